import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerCountCommand } from '../../src/cli/count.js';
import { fullMask, removeSites, saveMask, specFor } from '../../src/models/index.js';

/** Runs `deepreduce count ...args` on a fresh program and returns what it printed. */
async function run(...args: string[]): Promise<string> {
  let out = '';
  const program = new Command('deepreduce').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerCountCommand(program, { out: (s) => void (out += s) });
  await program.parseAsync(['count', ...args], { from: 'user' });
  return out;
}

test('count prints per-site, per-stage, total and per-layer MAC tables', async () => {
  const out = await run('--arch', 'resnet18', '--input', '32');
  assert.match(
    out,
    /^resnet18 \(resnet-cifar, basic blocks 2,2,2,2, alpha 1, rho 1\), input 3x32x32, 100 classes; all sites kept/,
  );
  assert.match(out, /stage2\.block0\.relu1\s+128x16x16\s+32,768\s+yes\s+32,768/);
  assert.match(
    out,
    /\n\s+stem\s+1\/1\s+65,536\n\s+stage1\s+4\/4\s+262,144\n\s+stage2\s+4\/4\s+131,072\n\s+stage3\s+4\/4\s+65,536\n\s+stage4\s+4\/4\s+32,768\n\s+total\s+17\/17\s+557,056\n/,
  );
  assert.match(out, /layer1\.0\.conv1\s+conv\s+64x32x32\s+64x32x32\s+37,748,736/);
  assert.match(out, /fc\s+linear\s+512\s+100\s+51,200/);
});

test('count --json with a preset, and with a mask file', async () => {
  const j = JSON.parse(await run('--preset', 'C100_12K', '--json'));
  assert.equal(j.total, 12_288);
  assert.equal(j.mask, 'preset C100_12K');
  assert.deepEqual(
    j.stages.map((s: { relus: number }) => s.relus),
    [0, 0, 8192, 4096, 0],
  );
  assert.deepEqual([j.spec.alpha, j.spec.rho], [0.5, 0.5]);
  assert.equal(JSON.parse(await run('--preset', 'TINY_57K', '--json')).total, 57_344);
  assert.equal(
    JSON.parse(await run('--arch', 'resnet18', '--input', '64', '--classes', '200', '--json')).total,
    2_228_224,
  );
  const dir = mkdtempSync(join(tmpdir(), 'count-'));
  try {
    const file = join(dir, 'm.json');
    saveMask(file, removeSites(fullMask(specFor('resnet18')), ['stem.relu']));
    const m = JSON.parse(await run('--arch', 'resnet18', '--mask', file, '--json'));
    assert.equal(m.total, 557_056 - 65_536);
    assert.equal(m.sites[0].enabled, false);
    await assert.rejects(run('--arch', 'resnet34', '--mask', file), /mask is for 'resnet18', network is 'resnet34'/);
    await assert.rejects(run('--preset', 'C100_12K', '--mask', file), /cannot be used with option '--mask/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('count rejects unknown presets/archs with the valid names, and bad numbers', async () => {
  await assert.rejects(run('--preset', 'C100_1K'), /unknown preset 'C100_1K'; valid: C100_230K, .*TINY_49K/);
  await assert.rejects(run('--arch', 'vgg16'), /unknown arch 'vgg16'; valid: resnet18, /);
  await assert.rejects(run('--input', 'big'), /--input must be a positive integer, got 'big'/);
  await assert.rejects(run('--preset', 'C100_12K', '--arch', 'resnet34'), /resnet18 configuration/);
});
