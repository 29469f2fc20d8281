import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, statSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'parse5';
import { writeBands } from '../train/bands.js';
import {
  checkTeacherShape,
  defaultReduceConfig,
  enumerateCandidates,
  reduce,
  type ReduceConfig,
} from '../../src/reduce/pipeline.js';
import { countRelus, specFor } from '../../src/models/index.js';
import { parseDepths } from '../../src/cli/reduce.js';

const data = writeBands(mkdtempSync(join(tmpdir(), 'dr-bands-')));
const config = (out: string, over: Partial<ReduceConfig> = {}): ReduceConfig =>
  defaultReduceConfig({
    arch: 'resnet20',
    baseAlpha: 0.25,
    dataset: 'mnist',
    dataDir: data,
    out,
    epochs: { baseline: 2, criticality: 1, candidate: 1 },
    alphas: [1],
    rhos: [1, 0.5],
    thinning: [false, true],
    depth: false,
    maxCulled: 1,
    batchSize: 30,
    lr: 0.05,
    quiet: true,
    ...over,
  });

test('candidates follow the culling order, the budget and the shapes', () => {
  const base = specFor('resnet20', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 8 });
  const c = config('/unused', { maxCulled: 2, alphas: [1, 0.5], depth: true, reshapedFull: true });
  const all = enumerateCandidates(base, [3, 1, 2], c);
  // culled {3}, {1,3} x thinned or not, plus thinned with nothing culled; x 2 alphas x 2 rhos x 2 depths; plus the
  // 7 reshaped shapes with nothing culled or thinned
  assert.equal(all.length, (2 * 2 + 1) * 2 * 2 * 2 + 7);
  const reshapedOnly = (k: (typeof all)[number]) => k.culled.length === 0 && !k.thinned;
  assert.ok(
    all.every(
      (k) =>
        ['[3]', '[1,3]'].includes(JSON.stringify(k.culled)) ||
        (k.culled.length === 0 && k.thinned) ||
        (reshapedOnly(k) && (k.alpha !== 0.25 || k.rho !== 1 || k.blocks.join() !== '3,3,3')),
    ),
  );
  assert.equal(all.filter(reshapedOnly).length, 7);
  assert.equal(new Set(all.map((k) => k.id)).size, all.length, 'ids are unique');
  assert.equal(enumerateCandidates(base, [3, 1, 2], { ...c, thinOnly: false }).length, 2 * 2 * 2 * 2 * 2 + 7);
  assert.equal(enumerateCandidates(base, [3, 1, 2], { ...c, reshapedFull: false }).length, (2 * 2 + 1) * 2 * 2 * 2);
  const full = countRelus(base).total;
  assert.ok(all.every((k) => k.relus < full));
  // Same-shape candidates (rho changes no weight) start from the teacher; narrower or shallower ones from its slices.
  for (const k of all) {
    const same = k.alpha === 0.25 && k.blocks.join() === '3,3,3';
    assert.equal(k.init, same ? 'teacher' : 'sliced', k.id);
  }
  assert.ok(enumerateCandidates(base, [3, 1, 2], { ...c, fromTeacher: false }).every((k) => k.init === 'scratch'));
  // explicit depths replace the default pair; a depth deeper than the baseline is refused
  const d = enumerateCandidates(base, [3, 1, 2], { ...c, depths: [[1, 1, 1]] });
  assert.ok(d.length > 0 && d.every((k) => k.blocks.join() === '1,1,1'));
  assert.throws(() => enumerateCandidates(base, [3, 1, 2], { ...c, depths: [[4, 1, 1]] }), /--depths: \[4,1,1\]/);
  const budget = all.map((k) => k.relus).sort((a, b) => a - b)[5]!;
  assert.ok(enumerateCandidates(base, [3, 1, 2], { ...c, budget }).every((k) => k.relus <= budget));
});

test('every step of the pipeline runs and writes results, CSV and a report', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-reduce-'));
  const lines: string[] = [];
  const r = await reduce(
    config(out, {
      candidateLimitTrain: 60,
      finetuneLimitTrain: 90,
      epochs: { baseline: 2, criticality: 1, candidate: 1, finetune: 2 },
    }),
    (s) => lines.push(s),
  );
  assert.deepEqual([...r.summary.criticalityOrder].sort(), [1, 2, 3]);
  assert.equal(r.criticality.stages.length, 3);
  assert.equal(
    r.candidates.length,
    4 + 2 + 1,
    'four culled candidates, two thinned with nothing culled, and the no-KD ablation',
  );
  assert.ok(r.candidates.some((c) => c.id === 'thin-a1-r1' && c.culled.length === 0 && c.thinned));
  assert.ok(r.candidates.every((c) => c.relus > 0 && c.acc >= 0 && c.acc <= 1 && c.latency_s > 0));
  assert.ok(r.front.length >= 1);
  assert.ok(r.summary.kdAblation);
  for (const f of [
    'results.json',
    'results.csv',
    'report.html',
    'baseline/model.safetensors',
    'criticality/linear/result.json',
  ])
    assert.ok(existsSync(join(out, f)), f);
  for (const c of r.candidates) {
    assert.ok(existsSync(join(c.dir, 'model.safetensors')), c.id);
    assert.ok(existsSync(join(c.dir, 'mask.json')), c.id);
  }
  const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
  assert.equal(csv.length, 1 + 1 + r.candidates.length);
  const errors: string[] = [];
  parse(readFileSync(join(out, 'report.html'), 'utf8'), { onParseError: (e) => errors.push(e.code) });
  assert.deepEqual(errors, []);
  // Same-shape candidates were fine-tuned from the teacher's weights.
  const ft = r.candidates.find((c) => c.init === 'teacher')!;
  assert.equal(JSON.parse(readFileSync(join(ft.dir, 'config.json'), 'utf8')).init, join(out, 'baseline'));
  // Fine-tuned candidates get their own number of training images and epochs; candidates from scratch the others.
  const cfgOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.ok(
    r.candidates
      .filter((c) => c.init === 'teacher')
      .every((c) => cfgOf(c.dir).limitTrain === 90 && cfgOf(c.dir).options.epochs === 2),
  );
  assert.ok(
    r.candidates
      .filter((c) => c.init !== 'teacher')
      .every((c) => cfgOf(c.dir).limitTrain === 60 && cfgOf(c.dir).options.epochs === 1),
  );
});

test('a killed run resumes and skips finished trainings', async () => {
  const out = mkdtempSync(join(tmpdir(), 'dr-reduce-kill-'));
  const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const args = [
    'reduce',
    '--arch',
    'resnet20',
    '--alpha',
    '0.25',
    '--dataset',
    'mnist',
    '--data',
    data,
    '--out',
    out,
    '--epochs',
    '2,1,1',
    '--alphas',
    '1',
    '--rhos',
    '1,0.5',
    '--no-depth',
    '--max-culled',
    '1',
    '--no-thin-only',
    '--batch-size',
    '30',
    '--lr',
    '0.05',
    '--jobs',
    '2',
  ];
  const p = spawn(process.execPath, [cli, ...args], { stdio: 'ignore' });
  const crit = join(out, 'criticality', 'stage1', 'result.json');
  while (!existsSync(crit)) await sleep(25);
  p.kill('SIGKILL');
  await new Promise((res) => p.on('exit', res));
  const before = statSync(crit).mtimeMs;
  assert.ok(!existsSync(join(out, 'results.json')));
  await new Promise<void>((res, rej) =>
    spawn(process.execPath, [cli, ...args], { stdio: 'ignore' }).on('exit', (c) =>
      c === 0 ? res() : rej(new Error(`exit ${c}`)),
    ),
  );
  assert.equal(statSync(crit).mtimeMs, before, 'a finished training is not run again');
  const r = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  assert.equal(r.candidates.length, 5);
  rmSync(out, { recursive: true, force: true });
});

test('a teacher of another shape than the baseline is refused, naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-teacher-'));
  try {
    const base = specFor('resnet18', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 32 });
    const put = (spec: object) =>
      writeFileSync(
        join(dir, 'model.json'),
        JSON.stringify({ format: 'deepreduce-model', spec, input: { mean: [0], std: [1] } }),
      );
    put({ ...base, mask: undefined });
    checkTeacherShape(dir, base);
    assert.throws(() => checkTeacherShape(join(dir, 'none'), base), /model\.json missing/);
    put({ ...base, alpha: 1 });
    assert.throws(() => checkTeacherShape(dir, base), /differs from the baseline in alpha \(1, not 0.25\)/);
    put({ ...base, blocks: [1, 1, 1, 1], numClasses: 100 });
    assert.throws(
      () => checkTeacherShape(dir, base),
      /blocks \(\[1,1,1,1\], not \[2,2,2,2\]\).*numClasses \(100, not 10\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--depths: digits or colon-separated block counts per stage; anything else is refused by name', () => {
  assert.deepEqual(parseDepths('2222,1111'), [
    [2, 2, 2, 2],
    [1, 1, 1, 1],
  ]);
  assert.deepEqual(parseDepths('3:4:6:3, 1:12:1:1'), [
    [3, 4, 6, 3],
    [1, 12, 1, 1],
  ]);
  for (const bad of ['2202', '2a22', '1:0:1', '1:-1:2'])
    assert.throws(() => parseDepths(bad), new RegExp(`'${bad}' is not blocks per stage`));
});
