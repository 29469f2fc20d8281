import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { countRelus, fullMask, loadMask, removeSites, specFor, type PartialSite } from '../../src/models/index.js';
import { nextPenalty, targetCount, topKMask } from '../../src/train/snl.js';
import { trainModel, defaultTrainConfig, type TrainConfig } from '../../src/train/run.js';
import { defaultTrainOptions } from '../../src/train/trainer.js';
import { writeBands } from '../train/bands.js';

setNumThreads(1);
const data = writeBands(mkdtempSync(join(tmpdir(), 'dr-snl-bands-')));

test('topKMask keeps exactly the budget, highest scores first, ties to the lower index', () => {
  const spec = specFor('resnet20', { alpha: 0.25, numClasses: 3, inChannels: 1, inputSize: 8 });
  const base = removeSites(fullMask(spec), ['stem.relu']);
  const gates = [
    { site: 'stage1.block0.relu1', shape: [4, 8, 8], scores: new Float32Array(256).map((_, i) => (i % 2 ? 1 : 0)) },
    { site: 'stage3.block2.relu2', shape: [16, 2, 2], scores: new Float32Array(16).fill(0.5) }, // per channel: 4 elements each
  ];
  const m = topKMask(base, gates, 150);
  const p = m.partial!['stage1.block0.relu1'] as PartialSite;
  assert.equal(p.elements.length, 128, 'all 128 odd elements (score 1) first');
  assert.ok(p.elements.every((i) => i % 2 === 1));
  const q = m.partial!['stage3.block2.relu2']!;
  assert.deepEqual(
    [...q.elements],
    Array.from({ length: 22 }, (_, i) => i),
    'the remaining 22 in index order',
  );
  assert.equal(
    countRelus({ ...spec, mask: m }).total -
      countRelus({ ...spec, mask: removeSites(base, ['stage1.block0.relu1', 'stage3.block2.relu2']) }).total,
    150,
  );
  assert.ok(!m.kept.includes('stage1.block0.relu1') && !m.kept.includes('stem.relu'));
  // A budget of all elements keeps both sites whole; zero removes them.
  assert.ok(topKMask(base, gates, 256 + 64).kept.includes('stage1.block0.relu1'));
  assert.ok(!topKMask(base, gates, 0).partial);
});

test('the penalty schedule: geometric target, mu up above it and down below it', () => {
  assert.equal(targetCount(1000, 10, 0, 100), 1000);
  assert.ok(Math.abs(targetCount(1000, 10, 50, 100) - 100) < 1e-9);
  assert.ok(Math.abs(targetCount(1000, 10, 100, 100) - 10) < 1e-9);
  assert.ok(Math.abs(targetCount(1000, 10, 150, 100) - 1) < 1e-9, 'falls on at the same rate');
  assert.equal(nextPenalty(1, 20, 10, 1.1), 1.1);
  assert.equal(nextPenalty(1, 5, 10, 1.25), 0.8);
});

test('mask learning reaches every budget exactly, in order, without overshooting, and the masks load', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-snl-'));
  try {
    const base = (over: Partial<TrainConfig> & { out: string }) =>
      defaultTrainConfig({
        arch: 'resnet20',
        alpha: 0.25,
        dataset: 'mnist',
        dataDir: data,
        batchSize: 30,
        ...over,
        options: { ...defaultTrainOptions, epochs: 2, lr: 0.05, quiet: true, threads: 1, ...over.options },
      });
    await trainModel(base({ out: join(dir, 'teacher') }));
    const budgets = [900, 300, 77];
    const r = await trainModel(
      base({
        out: join(dir, 'snl'),
        teacher: join(dir, 'teacher'),
        init: join(dir, 'teacher'),
        learnMask: {
          budgets,
          granularity: 'element',
          reachEpochs: 6,
          maxEpochs: 12,
          maskLr: 0.05,
          weightLr: 0.01,
          penalty: 1e-3,
          penaltyStep: 1.2,
          threshold: 0.01,
        },
      }),
    );
    const snaps = r.snapshots!;
    assert.deepEqual(
      snaps.map((s) => s.budget),
      budgets,
    );
    for (let i = 1; i < snaps.length; i++) assert.ok(snaps[i]!.step >= snaps[i - 1]!.step);
    for (const s of snaps) {
      assert.equal(s.relus, s.budget, 'exact');
      if (s.reached) assert.ok(s.thresholdCount <= s.budget);
      const spec = specFor('resnet20', { alpha: 0.25, numClasses: 3, inChannels: 1, inputSize: 8 });
      const mask = loadMask(join(s.dir, 'mask.json'), spec);
      assert.equal(countRelus({ ...spec, mask }).total, s.budget);
      assert.ok(existsSync(join(s.dir, 'model.safetensors')));
    }
    assert.ok(
      snaps.some((s) => s.reached),
      JSON.stringify(snaps),
    );
    const doc = JSON.parse(readFileSync(join(snaps[2]!.dir, 'mask.json'), 'utf8'));
    assert.ok(Object.values(doc.partial as Record<string, { relus: number }>).reduce((t, p) => t + p.relus, 0) <= 77);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a killed mask phase resumes from its checkpoint and gives the uninterrupted run's masks", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-snl-resume-'));
  const entry = fileURLToPath(new URL('../../src/train/entry.js', import.meta.url));
  const run = (cfg: string) =>
    new Promise<void>((res, rej) =>
      spawn(process.execPath, [entry, cfg], { stdio: 'ignore' }).on('exit', (c) =>
        c === 0 ? res() : rej(new Error(`exit ${c}`)),
      ),
    );
  try {
    const options = { ...defaultTrainOptions, epochs: 2, lr: 0.05, quiet: true, threads: 1 };
    const common = { arch: 'resnet20', alpha: 0.25, dataset: 'mnist', dataDir: data, batchSize: 30, options };
    writeFileSync(join(dir, 'teacher.json'), JSON.stringify({ ...common, out: join(dir, 'teacher') }));
    await run(join(dir, 'teacher.json'));
    const learn = (out: string) => ({
      ...common,
      out,
      teacher: join(dir, 'teacher'),
      init: join(dir, 'teacher'),
      learnMask: {
        budgets: [500, 120],
        granularity: 'element',
        reachEpochs: 10,
        maxEpochs: 20,
        maskLr: 0.05,
        weightLr: 0.01,
        penalty: 1e-3,
        penaltyStep: 1.1,
        threshold: 0.01,
      },
    });
    for (const name of ['a', 'b']) writeFileSync(join(dir, `${name}.json`), JSON.stringify(learn(join(dir, name))));
    await run(join(dir, 'a.json'));
    // b: killed once its first checkpoint is written, then run again
    const p = spawn(process.execPath, [entry, join(dir, 'b.json')], { stdio: 'ignore' });
    const state = join(dir, 'b', 'mask-state', 'state.json');
    for (let i = 0; i < 2400 && !existsSync(state) && p.exitCode === null; i++) await sleep(25);
    p.kill('SIGKILL');
    await new Promise((res) => (p.exitCode !== null ? res(null) : p.on('exit', res)));
    assert.ok(!existsSync(join(dir, 'b', 'result.json')), 'killed before the end');
    await run(join(dir, 'b.json'));
    const ra = JSON.parse(readFileSync(join(dir, 'a', 'result.json'), 'utf8')),
      rb = JSON.parse(readFileSync(join(dir, 'b', 'result.json'), 'utf8'));
    const strip = (r: { snapshots: { dir: string }[] }) => r.snapshots.map(({ dir: _, ...q }) => q);
    assert.deepEqual(strip(rb), strip(ra));
    for (const b of [500, 120])
      assert.equal(
        readFileSync(join(dir, 'b', `budget-${b}`, 'mask.json'), 'utf8'),
        readFileSync(join(dir, 'a', `budget-${b}`, 'mask.json'), 'utf8'),
        `budget ${b}`,
      );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
