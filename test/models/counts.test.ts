import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PRESETS,
  buildNetwork,
  countByForward,
  countGraph,
  countRelus,
  describeNetwork,
  presetSpec,
  specFor,
  type NetSpec,
} from '../../src/models/index.js';
import { formatCount } from '../../src/cli/count.js';

const stageSplit = (spec: NetSpec) => countRelus(spec).stages.map((s) => [s.stage, s.relus]);

/** Shape inference and a counted forward pass on the same network must agree site by site. */
function assertAgree(spec: NetSpec, inputSize = spec.inputSize): number {
  const net = buildNetwork({ ...spec, inputSize });
  try {
    const shape = countGraph(describeNetwork(net), spec.arch);
    const fwd = countByForward(net, inputSize);
    const kept = shape.sites.filter((s) => s.enabled).map(({ site, relus }) => ({ site, relus }));
    assert.deepEqual(fwd.sites, kept, `${spec.arch}: per-site counts`);
    assert.deepEqual(fwd.stages, shape.stages, `${spec.arch}: per-stage counts`);
    assert.equal(fwd.total, shape.total);
    return shape.total;
  } finally {
    net.dispose();
  }
}

test('ResNet18 (CIFAR layout) at 32x32: 557,056 ReLUs with the reference split, both ways', () => {
  const spec = specFor('resnet18');
  assert.deepEqual(stageSplit(spec), [
    ['stem', 65_536],
    ['stage1', 262_144],
    ['stage2', 131_072],
    ['stage3', 65_536],
    ['stage4', 32_768],
  ]);
  assert.equal(assertAgree(spec), 557_056);
});

test('ResNet18 (CIFAR layout) at 64x64: 2,228,224 ReLUs with the reference split, both ways', () => {
  const spec = specFor('resnet18', { inputSize: 64, numClasses: 200 });
  assert.deepEqual(stageSplit(spec), [
    ['stem', 262_144],
    ['stage1', 1_048_576],
    ['stage2', 524_288],
    ['stage3', 262_144],
    ['stage4', 131_072],
  ]);
  assert.equal(assertAgree(spec), 2_228_224);
});

test('ResNet18 at 224x224: 27,295,744 is the CIFAR layout; the 7x7/2 + max-pool layout has 2,308,096', () => {
  // The reference's ImageNet figure equals 49 x 557,056, i.e. the stride-1, no-max-pool layout at 224x224.
  const cifar224 = countRelus(specFor('resnet18', { inputSize: 224 }));
  assert.equal(cifar224.total, 27_295_744);
  assert.equal(cifar224.total, 49 * 557_056);
  const imagenet = countRelus(specFor('resnet18-imagenet'));
  assert.deepEqual(
    imagenet.stages.map((s) => s.relus),
    [802_816, 802_816, 401_408, 200_704, 100_352],
  );
  assert.equal(imagenet.total, 2_308_096);
  // torchvision resnet18: conv1 = 64*112*112 * 3*7*7 MACs, 1.814 GMACs in all.
  assert.equal(imagenet.layers[0]!.macs, 64 * 112 * 112 * 3 * 49);
  assert.equal(imagenet.macs, 1_814_073_344);
  // The 3x3/2 max pool (padding 1) on 64x112x112: its comparisons are counted apart, the ReLUs unchanged. Per
  // channel: 167 valid window rows (2 + 55 x 3) by 167 columns, less one per window of the 56x56 output.
  assert.equal(imagenet.maxPoolComparisons, 64 * (167 * 167 - 56 * 56));
  assert.equal(imagenet.maxPoolComparisons, 1_584_192);
  assert.equal(imagenet.maxPoolLevels, 4);
  assert.equal(cifar224.maxPoolComparisons, 0);
  assert.equal(cifar224.maxPoolLevels, 0);
  const text = formatCount(imagenet, specFor('resnet18-imagenet'), 'full mask');
  assert.match(text, /ReLUs: 2,308,096 /);
  assert.match(
    text,
    /Max-pool comparisons: 1,584,192 \(non-linear ops beside the ReLUs, each one ReLU under PI; 4 levels\)/,
  );
  assert.doesNotMatch(formatCount(cifar224, specFor('resnet18', { inputSize: 224 }), 'full mask'), /Max-pool/);
});

const EXPECTED: Record<string, number> = {
  C100_230K: 229_376,
  C100_115K: 114_688,
  C100_57K: 57_344,
  C100_49K: 49_152,
  C100_29K: 28_672,
  C100_14K: 14_336,
  C100_12K: 12_288,
  C100_7K: 7_168,
  TINY_918K: 917_504,
  TINY_459K: 458_752,
  TINY_393K: 393_216,
  TINY_229K: 229_376,
  TINY_197K: 196_608,
  TINY_115K: 114_688,
  TINY_98K: 98_304,
  TINY_57K: 57_344,
  TINY_49K: 49_152,
};

test('every DeepReDuce preset reproduces its published ReLU count by shape inference', () => {
  assert.deepEqual(PRESETS.map((p) => p.name).sort(), Object.keys(EXPECTED).sort());
  for (const p of PRESETS) {
    assert.equal(p.relus, EXPECTED[p.name], p.name);
    assert.equal(countRelus(presetSpec(p.name)).total, EXPECTED[p.name], `${p.name} by shape inference`);
  }
});

test('presets agree with a forward pass (one per geometry/mask kind; full-width 64x64 is covered above)', () => {
  for (const name of ['C100_12K', 'C100_7K', 'C100_29K', 'TINY_57K', 'TINY_49K', 'TINY_98K'])
    assert.equal(assertAgree(presetSpec(name)), EXPECTED[name], `${name} by forward`);
});

test('other architectures agree between shape inference and forward pass', () => {
  assert.equal(assertAgree(specFor('resnet20')), 16_384 + 6 * 16 * 1024 + 6 * 32 * 256 + 6 * 64 * 64);
  assert.equal(countRelus(specFor('resnet56')).sites.length, 1 + 2 * 27);
  assertAgree(specFor('resnet34', { alpha: 0.25 }));
  assertAgree(specFor('resnet50', { alpha: 0.125 }));
  assertAgree(specFor('resnet18-imagenet', { alpha: 0.25 }), 64);
  assertAgree(specFor('resnet18', { alpha: 0.5, rho: 0.5, inputSize: 64 }));
  // WRN-22-8 at 32x32: stage1 = 16*32*32 (block0.relu1 on the stem) + 128*32*32 + 2 blocks * 2 * 128*32*32.
  const wrn = countRelus(specFor('wrn-22-8'));
  assert.equal(wrn.stages[0]!.relus, 16 * 1024 + 128 * 1024 + 4 * 128 * 1024);
  assert.equal(wrn.stages.at(-1)!.stage, 'head');
  assertAgree(specFor('wrn-22-8', { alpha: 0.125 }));
});

test('countByForward restores the hook and training mode', () => {
  const net = buildNetwork(specFor('resnet20', { alpha: 0.25 }));
  try {
    countByForward(net);
    assert.equal(net.training, true);
    assert.ok([...net.modules()].every(([, m]) => m.training));
  } finally {
    net.dispose();
  }
});
