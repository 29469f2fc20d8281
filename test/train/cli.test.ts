import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { writeBands } from './bands.js';
import { loadModelDir } from '../../src/train/modeldir.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
const data = writeBands(mkdtempSync(join(tmpdir(), 'dr-cli-bands-')));

test('deepreduce train and eval from the command line', () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-cli-train-'));
  const mask = join(out, 'm.json');
  writeFileSync(mask, JSON.stringify({ arch: 'resnet20', removed: ['stem.relu', 'stage1.block0.relu1'] }));
  const t = run(
    'train',
    '--arch',
    'resnet20',
    '--alpha',
    '0.25',
    '--mask',
    mask,
    '--dataset',
    'mnist',
    '--data',
    data,
    '--epochs',
    '2',
    '--batch-size',
    '30',
    '--lr',
    '0.05',
    '--out',
    join(out, 'm'),
    '--quiet',
    '--json',
  );
  assert.equal(t.status, 0, t.stderr);
  const s = JSON.parse(t.stdout.trim());
  assert.equal(s.epochs.length, 2);
  const cfg = JSON.parse(readFileSync(join(out, 'm', 'config.json'), 'utf8'));
  assert.equal(typeof cfg.version, 'string');
  assert.equal(cfg.options.epochs, 2);
  const { net, info } = loadModelDir(join(out, 'm'));
  assert.equal(info.spec.arch, 'resnet20');
  assert.equal(net.sites().find((x) => x.site === 'stage1.block0.relu1')!.enabled, false);
  net.dispose();
  const e = run('eval', '--model', join(out, 'm'), '--data', data, '--json');
  assert.equal(e.status, 0, e.stderr);
  const r = JSON.parse(e.stdout.trim());
  assert.equal(r.n, 30);
  assert.equal(r.confusion.length, 10);
  assert.ok(Math.abs(r.acc - s.test_acc) < 1e-9, "eval reproduces the training run's test accuracy");
  assert.ok(existsSync(join(out, 'm', 'eval.json')));
});

test('bad input gets clear errors', () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-cli-bad-'));
  const bad = join(out, 'bad.json');
  writeFileSync(bad, JSON.stringify({ arch: 'resnet20', kept: ['stage9.block0.relu1'] }));
  let r = run(
    'train',
    '--arch',
    'resnet20',
    '--mask',
    bad,
    '--dataset',
    'mnist',
    '--data',
    data,
    '--out',
    join(out, 'x'),
    '--quiet',
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /stage9\.block0\.relu1/);
  assert.match(r.stderr, /stage1\.block0\.relu1/, 'lists the valid site names');
  r = run('train', '--preset', 'C100_99K', '--dataset', 'mnist', '--data', data, '--out', join(out, 'y'), '--quiet');
  assert.match(r.stderr, /unknown preset 'C100_99K'.*C100_12K/);
  r = run('eval', '--model', join(out, 'nothing'));
  assert.match(r.stderr, /not a deepreduce model directory \(model.json missing\)/);
  mkdirSync(join(out, 'corrupt'));
  writeFileSync(join(out, 'corrupt', 'model.json'), '{"format": "deepreduce-model", "spec": ');
  r = run('eval', '--model', join(out, 'corrupt'));
  assert.match(r.stderr, /corrupt\/model.json: not valid JSON/);
  rmSync(out, { recursive: true, force: true });
});
