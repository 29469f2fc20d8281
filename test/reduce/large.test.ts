// DeepReDuce on the larger networks, on generated data (no TinyImageNet or ImageNet files here): ResNet-18 at 64x64
// with TinyImageNet's 200 classes, and ResNet-50 (bottleneck blocks, stride-2 stem, max pool) at 224x224 with
// ImageNet's 1000, both at alpha 1/8 on a few images and one epoch per training: the pipeline's criticality runs,
// culling order and candidates, with the counts of the networks they name. Accuracies on such data mean nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countRelus, specFor, type NetSpec } from '../../src/models/index.js';
import { defaultReduceConfig, enumerateCandidates, reduce, type ReduceConfig } from '../../src/reduce/pipeline.js';
import { readModelInfo, specOf } from '../../src/train/modeldir.js';
import { writeImageNetFolder, writeTinyImageNet } from '../data/fixtures.js';

const tmp = (tag: string) => mkdtempSync(join(tmpdir(), `dr-large-${tag}-`));

const config = (over: Partial<ReduceConfig> & Pick<ReduceConfig, 'out' | 'dataset'>): ReduceConfig =>
  defaultReduceConfig({
    baseAlpha: 0.125,
    epochs: { baseline: 1, criticality: 1, candidate: 1 },
    alphas: [1],
    rhos: [1],
    depth: false,
    maxCulled: 1,
    kdAblation: false,
    batchSize: 6,
    lr: 0.05,
    quiet: true,
    ...over,
  });

/** The checks both networks share: the criticality runs and the candidates match the networks they name. */
function checkRun(r: Awaited<ReturnType<typeof reduce>>, base: NetSpec, stages: number) {
  const full = countRelus(base);
  assert.equal(r.baseline.relus, full.total);
  assert.equal(r.criticality.stages.length, stages);
  assert.deepEqual(
    [...r.criticality.order].sort(),
    Array.from({ length: stages }, (_, i) => i + 1),
  );
  // a stage's run keeps exactly that stage's ReLUs: together the stages and the stem are the network's
  const stageRelus = r.criticality.stages.reduce((a, s) => a + s.relus, 0);
  const stem = full.sites.find((s) => s.site === 'stem.relu')!.relus;
  assert.equal(stageRelus + stem, full.total);
  for (const c of r.candidates) {
    // the network it trained (its saved spec, mask included)
    const spec = specOf(readModelInfo(c.dir), c.dir);
    assert.equal(c.relus, countRelus(spec).total, c.id);
    assert.ok(c.relus < full.total, `${c.id}: ${c.relus} ReLUs, the baseline ${full.total}`);
    assert.equal(spec.numClasses, base.numClasses);
    assert.equal(spec.inputSize, base.inputSize);
    assert.equal(spec.rho, base.rho, `${c.id}: rho 1 keeps the baseline's stem`);
    assert.ok(Number.isFinite(c.latency_s) && c.latency_s > 0);
  }
  // the culled candidate culls the least critical stage, and the stem ReLU
  const cull = r.candidates.find((c) => c.culled.length === 1 && !c.thinned)!;
  assert.deepEqual(cull.culled, [r.criticality.order[0]]);
  const culled = r.criticality.stages.find((s) => s.stage === r.criticality.order[0])!;
  assert.equal(cull.relus, full.total - culled.relus - stem);
  assert.equal(cull.init, 'teacher', 'same shape as the baseline: fine-tuned from it');
  // the baseline was saved with the head it was asked for
  assert.equal(readModelInfo(r.baseline.dir).spec.numClasses, base.numClasses);
  assert.ok(existsSync(join(r.config.out, 'report.html')));
}

test('resnet18 at 64x64 (TinyImageNet layout, 200 classes): criticality, culling and thinning', async () => {
  const data = writeTinyImageNet(tmp('tiny'), 64, true),
    out = tmp('tiny-out');
  try {
    const r = await reduce(
      config({
        arch: 'resnet18',
        dataset: 'tiny-imagenet',
        dataDir: data,
        numClasses: 200,
        out,
        thinning: [false, true],
      }),
      () => {},
    );
    const base = specFor('resnet18', { alpha: 0.125, inputSize: 64, numClasses: 200 });
    assert.equal(r.baseline.relus, 2_228_224 / 8);
    checkRun(r, base, 4);
    // culled and thinned, and thinned alone (nothing culled)
    assert.equal(r.candidates.length, 3);
    assert.ok(r.candidates.some((c) => c.id === 'thin-a1-r1'));
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});

test('resnet50-imagenet at 224x224 (ImageNet folder layout, 1000 classes): criticality and the cull plan, trained', async () => {
  const data = writeImageNetFolder(tmp('inet')),
    out = tmp('inet-out');
  try {
    const r = await reduce(
      config({
        arch: 'resnet50-imagenet',
        dataset: 'folder',
        dataDir: data,
        numClasses: 1000,
        out,
        thinning: [false],
        batchSize: 3,
      }),
      () => {},
    );
    const base = specFor('resnet50-imagenet', { alpha: 0.125, inputSize: 224, numClasses: 1000 });
    assert.equal(r.baseline.relus, 9_608_704 / 8);
    checkRun(r, base, 4);
    assert.equal(r.candidates.length, 1);
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});

test('--rhos scale the baseline stem: an ImageNet layout keeps its stride-2 stem at 1, halves at 0.5', () => {
  const base = specFor('resnet50-imagenet', { alpha: 0.125, inputSize: 224, numClasses: 1000 });
  const all = enumerateCandidates(
    base,
    [1, 2, 3, 4],
    config({ out: '/unused', dataset: 'folder', rhos: [1, 0.5], thinning: [false, true] }),
  );
  const full = countRelus(base).total;
  assert.ok(all.length >= 4);
  for (const c of all) {
    assert.ok(c.relus < full, `${c.id}: ${c.relus} ReLUs above the baseline's ${full}`);
    assert.equal(c.rho, c.id.includes('-r0.5') ? 0.25 : 0.5, c.id);
  }
  // a CIFAR layout: rho as before
  const cifar = specFor('resnet18', { alpha: 0.125, inputSize: 64, numClasses: 200 });
  const rhos = enumerateCandidates(
    cifar,
    [1, 2, 3, 4],
    config({ out: '/unused', dataset: 'folder', rhos: [1, 0.5] }),
  ).map((c) => c.rho);
  assert.deepEqual([...new Set(rhos)].sort(), [0.5, 1]);
});
