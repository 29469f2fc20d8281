import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { noGrad, tensor, tidy } from '../../src/engine/index.js';
import { DEBIAN_FASHION_MNIST, loadDataset, makeBatch } from '../../src/data/index.js';
import {
  countRelus,
  cullStages,
  describeNetwork,
  fullMask,
  getPreset,
  runGraph,
  presetSpec,
  removeSites,
  siteNames,
  specFor,
  thin,
  type NetSpec,
} from '../../src/models/index.js';
import { decodeOnnx, encodeOnnx, exportOnnx, graphToOnnx, ONNX_OPSET } from '../../src/export/onnx.js';
import { dims, makeNet, maxAbsDiff, ortLogits, ortReluElements, ourLogits, randomInput, session } from './helpers.js';

const fashion = { n: 0, source: '' } as { n: number; source: string; x?: Float32Array };
const fmnistSkip = existsSync(DEBIAN_FASHION_MNIST)
  ? false
  : `${DEBIAN_FASHION_MNIST} not installed (apt-get install dataset-fashion-mnist)`;
/** The first 16 Fashion-MNIST test images as the models see them: pixel/255, padded 28 -> 32 with black, normalised. */
function fashionBatch(): Float32Array {
  if (!fashion.x) {
    const te = loadDataset('fashion-mnist', 'test');
    const idx = Array.from({ length: 16 }, (_, i) => i);
    fashion.x = makeBatch(te, idx, { padTo: 32, mean: te.mean, std: te.std }, 0).x;
    fashion.n = idx.length;
  }
  return fashion.x;
}

const r20 = specFor('resnet20', { numClasses: 10, inChannels: 1 });
const customMask = thin(
  removeSites(fullMask(r20), ['stem.relu', 'stage2.block1.relu2', 'stage3.block2.relu2']),
  'relu1',
  [3],
);
const c12k: NetSpec = { ...presetSpec('C100_12K'), numClasses: 10, inChannels: 1 };

const CASES: { label: string; spec: NetSpec }[] = [
  { label: 'resnet20, all sites', spec: r20 },
  { label: 'resnet20, custom mask', spec: { ...r20, mask: customMask } },
  { label: 'C100_12K (culled + thinned), 10 classes, 1 channel', spec: c12k },
];

for (const { label, spec } of CASES) {
  for (const foldBn of [false, true]) {
    test(`${label}, BN ${foldBn ? 'folded' : 'kept'}: onnxruntime matches our inference; Relu outputs add up to countRelus`, async (t) => {
      const net = makeNet(spec);
      try {
        const e = exportOnnx(net, { foldBn });
        const s = await session(e.bytes);
        for (const n of [1, 5]) {
          const x = randomInput(spec, n);
          const got = await ortLogits(s, spec, x, n);
          assert.deepEqual(got.dims, [n, spec.numClasses], 'dynamic batch dimension');
          const d = maxAbsDiff(got.data, ourLogits(net, x, n));
          assert.ok(d < 1e-4, `random inputs, batch ${n}: max |onnx - ours| = ${d}`);
        }
        await t.test('Fashion-MNIST test images', { skip: fmnistSkip }, async () => {
          const x = fashionBatch();
          const got = await ortLogits(s, spec, x, fashion.n);
          const d = maxAbsDiff(got.data, ourLogits(net, x, fashion.n));
          assert.ok(d < 1e-4, `Fashion-MNIST: max |onnx - ours| = ${d}`);
        });

        const count = countRelus(spec);
        const kept = spec.mask?.kept ?? siteNames(spec);
        const perNode = await ortReluElements(e.bytes, spec);
        assert.deepEqual(
          [...perNode.keys()],
          kept,
          'one Relu node per kept site, named by the site, none for removed sites',
        );
        for (const site of count.sites.filter((c) => c.enabled))
          assert.equal(perNode.get(site.site), site.relus, site.site);
        const total = [...perNode.values()].reduce((a, b) => a + b, 0);
        assert.equal(total, count.total, 'Relu output elements per image = countRelus total');
        assert.equal(e.summary.reluElements, count.total, 'the exported value_info shapes agree');
        if (spec === c12k) assert.equal(total, getPreset('C100_12K').relus);
      } finally {
        net.dispose();
      }
    });
  }
}

test('graph structure: opset 17, input/logits with batch dim N, torchvision-named initializers, BN nodes kept or folded', () => {
  const spec = { ...r20, mask: customMask };
  const net = makeNet(spec);
  try {
    const kept = decodeOnnx(exportOnnx(net).bytes);
    assert.equal(kept.ir_version, 8);
    assert.deepEqual(
      kept.opset_import.map((o) => [o.domain ?? '', o.version]),
      [['', ONNX_OPSET]],
    );
    const io = (v: (typeof kept.graph.input)[number]) => [
      v.name,
      v.type.tensor_type.elem_type,
      v.type.tensor_type.shape!.dim.map((d) => d.dim_param ?? d.dim_value),
    ];
    assert.deepEqual(io(kept.graph.input[0]!), ['input', 1, ['N', 1, 32, 32]]);
    assert.deepEqual(io(kept.graph.output[0]!), ['logits', 1, ['N', 10]]);
    const ops = (m: typeof kept) => m.graph.node.map((n) => n.op_type);
    const bnCount = [...net.stateDict().keys()].filter((k) => k.endsWith('.running_mean')).length;
    assert.equal(ops(kept).filter((o) => o === 'BatchNormalization').length, bnCount);
    const inits = new Set(kept.graph.initializer.map((i) => i.name));
    assert.deepEqual(
      [...inits].sort(),
      [...net.stateDict().keys()].sort(),
      'BN kept: the initializers are exactly the state dict',
    );
    assert.deepEqual(
      kept.graph.node.slice(0, 3).map((n) => [n.name, n.op_type, n.input.length]),
      [
        ['conv1', 'Conv', 2],
        ['bn1', 'BatchNormalization', 5],
        ['layer1.0.conv1', 'Conv', 2],
      ],
    );
    const ds = kept.graph.node.find((n) => n.name === 'layer2.0.downsample.0')!;
    assert.deepEqual(
      ds.attribute!.map((a) => [a.name, a.ints?.length ? a.ints : a.i]),
      [
        ['kernel_shape', [1, 1]],
        ['strides', [2, 2]],
        ['pads', [0, 0, 0, 0]],
        ['dilations', [1, 1]],
        ['group', 1],
      ],
    );
    assert.ok(
      !kept.graph.node.some((n) => n.name === 'stem.relu' || n.name === 'stage3.block0.relu2'),
      'removed sites have no node',
    );
    assert.deepEqual(
      kept.graph.node.slice(-3).map((n) => [n.name, n.op_type]),
      [
        ['avgpool', 'GlobalAveragePool'],
        ['flatten', 'Flatten'],
        ['fc', 'Gemm'],
      ],
    );

    const folded = decodeOnnx(exportOnnx(net, { foldBn: true }).bytes);
    assert.equal(ops(folded).filter((o) => o === 'BatchNormalization').length, 0);
    assert.equal(ops(folded).filter((o) => o === 'Conv').length, ops(kept).filter((o) => o === 'Conv').length);
    const c1 = folded.graph.node[0]!;
    assert.deepEqual(
      [c1.name, c1.input, c1.doc_string],
      ['conv1', ['input', 'conv1.folded_weight', 'conv1.folded_bias'], "BatchNorm 'bn1' folded in"],
    );
    assert.equal(folded.graph.node[1]!.input[0], 'conv1', 'the removed stem.relu passes the conv output straight on');
  } finally {
    net.dispose();
  }
});

// Other layouts: WRN (pre-activation; a BN reading the stem conv and the shortcut is not foldable), bottleneck, ImageNet stem.
const FAMILIES: { label: string; spec: NetSpec }[] = [
  {
    label: 'wrn-10-2 without head.relu',
    spec: (() => {
      const s = specFor('wrn-10-2', { alpha: 0.5, numClasses: 10 });
      return { ...s, mask: removeSites(fullMask(s), ['head.relu', 'stage2.block0.relu1']) };
    })(),
  },
  {
    label: 'resnet50 (bottleneck), stage 1 culled',
    spec: (() => {
      const s = specFor('resnet50', { alpha: 0.0625, numClasses: 10 });
      return { ...s, mask: thin(removeSites(fullMask(s), ['stage1.block0.relu3']), 'relu2', [4]) };
    })(),
  },
  {
    label: 'resnet18-imagenet (7x7 stem + max-pool)',
    spec: specFor('resnet18-imagenet', { alpha: 0.125, numClasses: 10, inputSize: 64 }),
  },
  {
    // `reduce --method reshape`'s kind of network: per-stage channels (alpha 1), stage 1 culled, thinned
    label: 'resnet18 reshaped (channels 4,8,4,16), stage 1 culled, thinned',
    spec: (() => {
      const s = specFor('resnet18', { alpha: 1, widths: [4, 8, 4, 16], numClasses: 10, inChannels: 1, inputSize: 16 });
      return { ...s, mask: thin(cullStages(removeSites(fullMask(s), ['stem.relu']), [1]), 'relu1') };
    })(),
  },
];
for (const { label, spec } of FAMILIES) {
  test(`${label}: exports, matches in onnxruntime with BN kept and folded, Relu counts agree`, async () => {
    const net = makeNet(spec);
    try {
      const x = randomInput(spec, 3);
      const ours = ourLogits(net, x, 3);
      for (const foldBn of [false, true]) {
        const e = exportOnnx(net, { foldBn });
        const d = maxAbsDiff((await ortLogits(await session(e.bytes), spec, x, 3)).data, ours);
        assert.ok(d < 1e-4, `BN ${foldBn ? 'folded' : 'kept'}: max |onnx - ours| = ${d}`);
        assert.equal(e.summary.reluElements, countRelus(spec).total);
        if (foldBn && spec.family === 'wrn')
          assert.ok(e.summary.batchNorms > 0 && e.summary.foldedBatchNorms > 0, JSON.stringify(e.summary));
        if (foldBn && spec.family !== 'wrn') assert.equal(e.summary.batchNorms, 0);
      }
      const perNode = await ortReluElements(exportOnnx(net).bytes, spec);
      assert.equal(
        [...perNode.values()].reduce((a, b) => a + b, 0),
        countRelus(spec).total,
      );
    } finally {
      net.dispose();
    }
  });
}

test('a graph that ends in a removed site still outputs logits (Identity), and runs', async () => {
  const spec = { ...r20, mask: customMask };
  const net = makeNet(spec);
  try {
    const nodes = describeNetwork(net);
    const cut = nodes.slice(0, nodes.findIndex((n) => n.name === 'stem.relu') + 1); // conv1, bn1, removed stem.relu
    const model = graphToOnnx(cut, { name: 'stem' });
    assert.deepEqual(
      model.graph.node.map((n) => [n.op_type, n.input[0], n.output[0]]),
      [
        ['Conv', 'input', 'conv1'],
        ['BatchNormalization', 'conv1', 'bn1'],
        ['Identity', 'bn1', 'logits'],
      ],
    );
    const x = randomInput(spec, 2);
    const s = await session(encodeOnnx(model));
    const r = await s.run({ input: new ort.Tensor('float32', x, dims(spec, 2)) });
    assert.deepEqual(r.logits!.dims, [2, 16, 32, 32]);
    const ours = tidy(() => noGrad(() => runGraph(cut, tensor(x, dims(spec, 2))).toArray() as Float32Array));
    assert.ok(maxAbsDiff(r.logits!.data as Float32Array, ours) < 1e-4);
  } finally {
    net.dispose();
  }
});
