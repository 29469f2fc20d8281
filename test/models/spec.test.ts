import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReLUSite, noGrad, randn, tidy } from '../../src/engine/index.js';
import { buildNetwork, describeNetwork, scaleWidth, siteNames, specFor, type NetSpec } from '../../src/models/index.js';

test('specFor: defaults, overrides, validation errors name the field', () => {
  const s = specFor('resnet18');
  assert.deepEqual(
    [s.family, s.blocks, s.widths, s.alpha, s.rho, s.numClasses, s.inputSize, s.inChannels],
    ['resnet-cifar', [2, 2, 2, 2], [64, 128, 256, 512], 1, 1, 100, 32, 3],
  );
  assert.deepEqual(specFor('resnet34').blocks, [3, 4, 6, 3]);
  assert.equal(specFor('resnet18-imagenet').rho, 0.5);
  assert.deepEqual(
    [specFor('resnet56').blocks, specFor('resnet56').widths],
    [
      [9, 9, 9],
      [16, 32, 64],
    ],
  );
  const w = specFor('wrn-22-8');
  assert.deepEqual([w.family, w.blocks, w.widths, w.stemWidth], ['wrn', [3, 3, 3], [128, 256, 512], 16]);
  assert.equal(specFor('resnet18', { alpha: 0.5, inputSize: undefined }).inputSize, 32);
  assert.throws(() => specFor('resnet19'), /unknown arch 'resnet19'; valid: .*resnet18.*wrn-22-8/);
  assert.throws(() => specFor('wrn-21-8'), /6n\+4/);
  assert.throws(() => specFor('resnet18', { rho: 0.3 }), /rho/);
  assert.throws(() => specFor('resnet18', { blocks: [2, 2] }), /widths has 4 stages but blocks has 2/);
  assert.throws(() => specFor('resnet20', { blockType: 'bottleneck' }), /blockType/);
  assert.equal(scaleWidth(64, 0.3), 19);
  assert.equal(scaleWidth(64, 0.001), 1);
});

test('torchvision state-dict names and parameter counts', () => {
  const cases: [string, number][] = [
    ['resnet18-imagenet', 11_689_512],
    ['resnet34-imagenet', 21_797_672],
    ['resnet50-imagenet', 25_557_032],
  ];
  for (const [arch, params] of cases) {
    const net = buildNetwork(specFor(arch));
    try {
      assert.equal(net.numParameters(), params, arch);
      const keys = [...net.stateDict().keys()];
      for (const k of [
        'conv1.weight',
        'bn1.running_mean',
        'layer1.0.conv1.weight',
        'layer2.0.downsample.0.weight',
        'layer2.0.downsample.1.running_var',
        'layer4.1.bn2.bias',
        'fc.weight',
        'fc.bias',
      ])
        assert.ok(keys.includes(k), `${arch}: ${k}`);
      assert.ok(!keys.some((k) => k.includes('relu')), 'ReLU sites hold no state');
      // torchvision's keys minus BN's num_batches_tracked (the engine's BatchNorm2d has no such buffer).
      if (arch === 'resnet18-imagenet') assert.equal(keys.length, 122 - 20);
    } finally {
      net.dispose();
    }
  }
});

test('sites(): named per the convention, in forward order, equal to siteNames(spec)', () => {
  const specs: NetSpec[] = [
    specFor('resnet18', { alpha: 0.25 }),
    specFor('resnet50', { alpha: 0.125 }),
    specFor('wrn-16-2', { alpha: 0.5 }),
    specFor('resnet20', { alpha: 0.5 }),
  ];
  for (const spec of specs) {
    const net = buildNetwork(spec);
    try {
      const names = net.sites().map((s) => s.site);
      assert.deepEqual(names, siteNames(spec), spec.arch);
      assert.deepEqual(
        describeNetwork(net)
          .filter((n) => n.op === 'relu')
          .map((n) => n.site),
        names,
      );
      const called: string[] = [];
      ReLUSite.onForward = (s) => void called.push(s.site);
      try {
        noGrad(() => tidy(() => void net.eval().forward(randn([1, 3, 32, 32]))));
      } finally {
        ReLUSite.onForward = null;
      }
      assert.deepEqual(called, names, `${spec.arch}: forward order`);
    } finally {
      net.dispose();
    }
  }
  assert.deepEqual(siteNames(specFor('resnet18')).slice(0, 4), [
    'stem.relu',
    'stage1.block0.relu1',
    'stage1.block0.relu2',
    'stage1.block1.relu1',
  ]);
  assert.equal(siteNames(specFor('wrn-22-8')).at(-1), 'head.relu');
});

test('stem stride is 1/rho and widths scale with alpha', () => {
  const net = buildNetwork(specFor('resnet18', { alpha: 0.5, rho: 0.5, numClasses: 10 }));
  try {
    const nodes = describeNetwork(net);
    const conv1 = nodes.find((n) => n.name === 'conv1')!;
    assert.deepEqual([conv1.attributes.stride, conv1.attributes.kernel, conv1.outShape], [2, 3, [32, 16, 16]]);
    assert.deepEqual(nodes.at(-1)!.outShape, [10]);
    assert.deepEqual(
      noGrad(() => tidy(() => net.forward(randn([2, 3, 32, 32])).shape)),
      [2, 10],
    );
  } finally {
    net.dispose();
  }
});
