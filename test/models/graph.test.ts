import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchNorm2d, Conv2d, F, noGrad, rand, randn, tidy, type Tensor } from '../../src/engine/index.js';
import {
  GraphBuilder,
  applyMask,
  buildNetwork,
  cullStages,
  describeNetwork,
  foldBatchNorm,
  fullMask,
  fusionPlan,
  inplaceNodes,
  runGraph,
  specFor,
  thin,
  type NetSpec,
  type Network,
} from '../../src/models/index.js';

const maxAbs = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().amax().item());

/** Gives every BN non-trivial statistics so that folding is actually exercised. */
function randomizeBn(net: Network): void {
  noGrad(() =>
    tidy(() => {
      for (const [, m] of net.modules()) {
        if (!(m instanceof BatchNorm2d)) continue;
        const c = [m.channels];
        m.weight.copy_(rand(c).mul(1).add(0.5));
        m.bias.copy_(randn(c).mul(0.1));
        m.runningMean.copy_(randn(c).mul(0.1));
        m.runningVar.copy_(rand(c).add(0.5));
      }
    }),
  );
}

test('describeNetwork: topological nodes with torchvision paths, site names and per-image shapes', () => {
  const net = buildNetwork(specFor('resnet18', { alpha: 0.25 }));
  try {
    applyMask(net, cullStages(fullMask(net.spec), [1]));
    const nodes = describeNetwork(net);
    nodes.forEach((n, i) => {
      assert.equal(n.id, i);
      assert.ok(
        n.inputs.every((j) => j < i),
        `node ${n.name} reads a later node`,
      );
    });
    assert.deepEqual([nodes[0]!.op, nodes[0]!.outShape], ['input', [3, 32, 32]]);
    assert.deepEqual([nodes.at(-1)!.op, nodes.at(-1)!.name, nodes.at(-1)!.outShape], ['linear', 'fc', [100]]);
    const keys = new Set(net.stateDict().keys());
    for (const n of nodes.filter((n) => n.op === 'conv' || n.op === 'bn' || n.op === 'linear'))
      assert.ok(keys.has(`${n.name}.weight`), n.name);
    const relus = nodes.filter((n) => n.op === 'relu');
    assert.equal(relus.length, 17);
    assert.deepEqual(
      relus.filter((n) => !n.enabled).map((n) => n.site),
      ['stage1.block0.relu1', 'stage1.block0.relu2', 'stage1.block1.relu1', 'stage1.block1.relu2'],
    );
    assert.equal(nodes.filter((n) => n.op === 'add').length, 8);
    const ds = nodes.find((n) => n.name === 'layer2.0.downsample.0')!;
    assert.deepEqual([ds.op, ds.attributes.kernel, ds.attributes.stride, ds.outShape], ['conv', 1, 2, [32, 16, 16]]);
    const add = nodes.find((n) => n.name === 'layer2.0.add')!;
    assert.ok(add.inputs.includes(ds.id + 1), 'the shortcut BN feeds the add');
    assert.deepEqual(nodes.map((n) => n.op).slice(-4), ['relu', 'gap', 'flatten', 'linear']);
  } finally {
    net.dispose();
  }
  const inet = buildNetwork(specFor('resnet18-imagenet', { alpha: 0.125 }));
  try {
    const mp = describeNetwork(inet).find((n) => n.op === 'maxpool')!;
    assert.deepEqual(
      [mp.name, mp.attributes.kernel, mp.attributes.stride, mp.attributes.padding, mp.outShape],
      ['maxpool', 3, 2, 1, [8, 56, 56]],
    );
  } finally {
    inet.dispose();
  }
});

const foldCases: [NetSpec, number, number][] = [
  [specFor('resnet18', { alpha: 0.25 }), 32, 20],
  [specFor('resnet18-imagenet', { alpha: 0.25 }), 64, 20],
  [specFor('resnet50', { alpha: 0.125 }), 32, 53],
  // WRN: stem conv + block0.bn1, and each block's conv1 + bn2; BNs after an add stay.
  [specFor('wrn-16-2', { alpha: 0.5 }), 32, 1 + 6],
];

test('runGraph reproduces forward, and folded convs give the same eval output (1e-4)', () => {
  for (const [spec, size, nFolded] of foldCases) {
    const net = buildNetwork(spec);
    try {
      randomizeBn(net);
      applyMask(net, thin(fullMask(spec), spec.blockType === 'bottleneck' ? 'relu3' : 'relu1', [2]));
      net.eval();
      const nodes = describeNetwork(net);
      const folded = foldBatchNorm(nodes);
      try {
        assert.equal(folded.length, nFolded, `${spec.arch}: folded convs`);
        noGrad(() =>
          tidy(() => {
            const x = randn([2, 3, size, size]);
            const ref = net.forward(x);
            assert.ok(maxAbs(runGraph(nodes, x), ref) < 1e-5, `${spec.arch}: graph vs forward`);
            // 1e-4 relative to the output's scale (float32; deep random-BN nets reach |y| ~ 100).
            const scale = maxAbs(ref, ref.mul(0));
            assert.ok(scale > 1e-3, 'non-trivial output');
            const d = maxAbs(runGraph(nodes, x, { folded }), ref);
            assert.ok(d <= 1e-4 * Math.max(1, scale), `${spec.arch}: folded differs by ${d} at scale ${scale}`);
            // In-place ReLUs/adds give the same result and leave the input untouched (shortcuts read it again).
            const x0 = x.clone();
            assert.equal(
              maxAbs(runGraph(nodes, x, { folded, inplace: true }), runGraph(nodes, x0, { folded })),
              0,
              `${spec.arch}: in place`,
            );
            assert.equal(
              maxAbs(runGraph(nodes, x, { inplace: true }), ref),
              maxAbs(runGraph(nodes, x0), ref),
              `${spec.arch}: in place, BN kept`,
            );
            assert.equal(maxAbs(x, x0), 0, `${spec.arch}: the input was overwritten`);
            if (F.hasFusedConv()) {
              // Convolutions with fused ReLU / residual add (oneDNN post-ops), each algorithm (Winograd in blocked layout).
              for (const fuse of ['direct', 'auto', ...(F.hasWinograd() ? (['winograd'] as const) : [])] as const) {
                const df = maxAbs(runGraph(nodes, x.contiguous('channels_last'), { folded, inplace: true, fuse }), ref);
                assert.ok(
                  df <= 1e-4 * Math.max(1, scale),
                  `${spec.arch}: fused (${fuse}) differs by ${df} at scale ${scale}`,
                );
              }
              assert.equal(maxAbs(x, x0), 0, `${spec.arch}: the input was overwritten by a fused run`);
            }
          }),
        );
      } finally {
        for (const f of folded) {
          f.weight.dispose();
          f.bias.dispose();
        }
      }
    } finally {
      net.dispose();
    }
  }
});

test('shape inference names the layer and shapes it cannot apply', () => {
  const g = new GraphBuilder();
  const x = g.input([3, 2, 2]);
  const conv = new Conv2d(3, 4, 3);
  const wide = new Conv2d(5, 4, 1);
  try {
    assert.throws(
      () => g.layer('stem', conv, x),
      /graph: conv 'stem' \(kernel 3, stride 1, padding 0\) on \[3,2,2\] gives 0x0/,
    );
    assert.throws(() => g.layer('l.conv', wide, x), /graph: conv 'l\.conv' expects 5 channels, got \[3,2,2\]/);
  } finally {
    conv.dispose();
    wide.dispose();
  }
});

test('inplaceNodes: a value read twice (block input: conv and shortcut) is never overwritten', () => {
  const net = buildNetwork(specFor('resnet20', { alpha: 0.25 }));
  try {
    const nodes = describeNetwork(net);
    const inplace = inplaceNodes(nodes, new Set());
    const readers = (id: number) => nodes.filter((n) => n.inputs.includes(id)).length;
    assert.ok(inplace.size > 0);
    for (const [id, input] of inplace) {
      assert.ok(nodes[id]!.inputs.includes(input));
      assert.equal(
        readers(input),
        1,
        `node ${nodes[id]!.name} overwrites ${nodes[input]!.name}, read ${readers(input)} times`,
      );
      assert.notEqual(nodes[input]!.op, 'input');
    }
    // Every relu2 after a residual add is in place (the add's output has one reader).
    const relu2 = nodes.filter((n) => n.op === 'relu' && n.name.endsWith('relu2'));
    assert.ok(relu2.length > 0 && relu2.every((n) => inplace.has(n.id)));
  } finally {
    net.dispose();
  }
});

test('fusionPlan: convs absorb the ReLU or residual add (+ ReLU) after them; culled ReLUs pass through', () => {
  const spec = specFor('resnet18', { alpha: 0.25 });
  const net = buildNetwork(spec);
  try {
    const nodes = describeNetwork(net);
    const bns = new Set(nodes.filter((n) => n.op === 'bn').map((n) => n.name));
    const byName = (p: Map<number, { relu: boolean; sum?: number; sumInplace: boolean }>) =>
      new Map([...p].map(([id, f]) => [nodes[id]!.name, f]));
    // Full mask: the stem and every conv1 take their ReLU; each block's residual goes into its later producer.
    let plan = byName(fusionPlan(nodes, bns));
    assert.equal(plan.size, 1 + 2 * 8);
    assert.equal(plan.get('conv1')!.relu, true);
    assert.equal(plan.get('conv1')!.sum, undefined);
    assert.equal(plan.get('layer1.0.conv2')!.relu, true);
    assert.equal(plan.get('layer1.0.conv2')!.sumInplace, false, 'the block input is read by conv1 too: copied');
    assert.ok(!plan.has('layer2.0.conv2'), 'the shortcut conv comes later and takes the add');
    assert.equal(plan.get('layer2.0.downsample.0')!.sumInplace, true, 'conv2 output has one reader: overwritten');
    // Without folded BNs nothing is absorbed (the BN stands between conv and ReLU).
    assert.equal(fusionPlan(nodes, new Set()).size, 0);
    // Culled stage 1: its conv1s have no ReLU to absorb; thinned (relu1 kept): the add is absorbed without a ReLU.
    applyMask(net, thin(cullStages(fullMask(spec), [1]), 'relu1', [2, 3, 4]));
    plan = byName(fusionPlan(describeNetwork(net), bns));
    assert.ok(!plan.has('layer1.0.conv1'));
    assert.equal(plan.get('layer1.1.conv2')!.relu, false);
    assert.equal(plan.get('layer3.1.conv2')!.relu, false);
    assert.equal(plan.get('layer3.1.conv1')!.relu, true);
  } finally {
    net.dispose();
  }
});
