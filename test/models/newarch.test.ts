// A new architecture takes one definition: a two-stage ResNet written once in this file (its blocks' run()) is
// counted, trained, exported to ONNX and run under private inference (HE preprocessing, OT ReLUs) with nothing else.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  Linear,
  ReLUSite,
  Sequential,
  manualSeed,
  noGrad,
  tensor,
  tidy,
} from '../../src/engine/index.js';
import {
  Block,
  Network,
  buildNetwork,
  countByForward,
  countRelus,
  cullStages,
  fullMask,
  registerFamily,
  removeSites,
  shapeNetwork,
  siteNames,
  specFor,
  validateSpec,
  type Flow,
  type NetSpec,
} from '../../src/models/index.js';
import { defaultTrainOptions, fit, type Batch } from '../../src/train/trainer.js';
import { exportOnnx } from '../../src/export/onnx.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { quantize } from '../../src/pi/fixed.js';
import { runClient, serveClient } from '../../src/pi/protocol.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { syntheticData } from '../train/synthetic.js';
import { maxAbsDiff, ortLogits, ortReluElements, ourLogits, session } from '../export/helpers.js';

// ---- the one definition
const conv = (i: number, o: number, stride = 1) => new Conv2d(i, o, 3, { stride, padding: 1, bias: false });

class Unit extends Block {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu1: ReLUSite;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly down: Sequential | null;
  readonly relu2: ReLUSite;
  constructor(site: string, inC: number, c: number, stride: number) {
    super();
    this.conv1 = this.child('conv1', conv(inC, c, stride));
    this.bn1 = this.child('bn1', new BatchNorm2d(c));
    this.relu1 = this.child('relu1', new ReLUSite(`${site}.relu1`));
    this.conv2 = this.child('conv2', conv(c, c));
    this.bn2 = this.child('bn2', new BatchNorm2d(c));
    this.down =
      stride !== 1 || inC !== c
        ? this.child('down', new Sequential(new Conv2d(inC, c, 1, { stride, bias: false }), new BatchNorm2d(c)))
        : null;
    this.relu2 = this.child('relu2', new ReLUSite(`${site}.relu2`));
  }
  run<V>(f: Flow<V>, x: V): V {
    const y = f(this.bn2, f(this.conv2, f(this.relu1, f(this.bn1, f(this.conv1, x)))));
    return f(this.relu2, f.add(y, this.down ? f(this.down, x) : x));
  }
}

class TwoStage extends Network {
  readonly stem: Conv2d;
  readonly bn: BatchNorm2d;
  readonly relu: ReLUSite;
  readonly stages: Sequential[];
  readonly pool: AdaptiveAvgPool2d;
  readonly fc: Linear;
  constructor(spec: NetSpec) {
    super(spec);
    const [w1, w2] = spec.widths as [number, number];
    this.stem = this.child('stem', conv(spec.inChannels, w1));
    this.bn = this.child('bn', new BatchNorm2d(w1));
    this.relu = this.child('relu', new ReLUSite('stem.relu'));
    this.stages = [
      [w1, w1, 1],
      [w1, w2, 2],
    ].map(([i, o, s], k) => this.child(`stage${k + 1}`, new Sequential(new Unit(`stage${k + 1}.block0`, i!, o!, s!))));
    this.pool = this.child('pool', new AdaptiveAvgPool2d(1));
    this.fc = this.child('fc', new Linear(w2, spec.numClasses));
  }
  run<V>(f: Flow<V>, x: V): V {
    let y = f(this.relu, f(this.bn, f(this.stem, x)));
    for (const s of this.stages) y = f(s, y);
    return f(this.fc, f.flatten(f(this.pool, y)));
  }
}
// ---- end of the definition

registerFamily('two-stage', (s) => new TwoStage(s));
const spec: NetSpec = validateSpec({
  arch: 'two-stage',
  family: 'two-stage',
  blockType: 'basic',
  blocks: [1, 1],
  widths: [4, 8],
  alpha: 1,
  rho: 1,
  numClasses: 3,
  inputSize: 8,
  inChannels: 1,
});

test('count: site names, shapes and ReLUs traced from the one forward, equal to a forward pass, with and without a mask', () => {
  assert.deepEqual(siteNames(spec), [
    'stem.relu',
    'stage1.block0.relu1',
    'stage1.block0.relu2',
    'stage2.block0.relu1',
    'stage2.block0.relu2',
  ]);
  const c = countRelus(spec);
  assert.deepEqual(
    c.sites.map((s) => s.shape),
    [
      [4, 8, 8],
      [4, 8, 8],
      [4, 8, 8],
      [8, 4, 4],
      [8, 4, 4],
    ],
  );
  assert.equal(c.total, 3 * 256 + 2 * 128);
  assert.deepEqual(
    c.stages.map((s) => [s.stage, s.relus]),
    [
      ['stem', 256],
      ['stage1', 512],
      ['stage2', 256],
    ],
  );
  // stem 4*64*9, stage1 2 * 4*64*36, stage2 8*16*36 + 8*16*72 + shortcut 8*16*4, fc 8*3
  assert.equal(c.macs, 2304 + 18432 + 4608 + 9216 + 512 + 24);
  const masked = { ...spec, mask: cullStages(removeSites(fullMask(spec), ['stem.relu']), [1]) };
  assert.equal(countRelus(masked).total, 256);
  // counted without weights: the network traced has no tensors at all
  assert.equal(shapeNetwork(specFor('resnet50-imagenet', { alpha: 4 })).stateDict().size, 0);
  for (const s of [spec, masked]) {
    const net = buildNetwork(s);
    try {
      assert.equal(countByForward(net).total, countRelus(s).total);
    } finally {
      net.dispose();
    }
  }
});

manualSeed(3);
const net = buildNetwork(spec);
after(() => net.dispose());

test('train, export, private inference: trains briefly, onnxruntime agrees, secure top-1 equals plaintext and fixed point', async () => {
  const r = await fit(
    net,
    syntheticData(),
    { ...defaultTrainOptions, epochs: 3, lr: 0.05, seed: 3, quiet: true, threads: 1 },
    mkdtempSync(join(tmpdir(), 'dr-newarch-')),
  );
  assert.ok(r.final!.test_acc > 0.6, `test acc ${r.final!.test_acc}`);
  net.eval();

  const batch = (syntheticData().test() as Batch[])[0]!;
  const n = 4,
    x = batch.x.subarray(0, n * 64);
  const e = exportOnnx(net);
  const s = await session(e.bytes);
  const ours = ourLogits(net, x, n);
  const got = await ortLogits(s, spec, x, n);
  assert.ok(maxAbsDiff(got.data, ours) < 1e-4, `max |onnx - ours| = ${maxAbsDiff(got.data, ours)}`);
  const perNode = await ortReluElements(e.bytes, spec);
  assert.deepEqual(
    [...perNode.entries()],
    countRelus(spec).sites.map((c) => [c.site, c.relus]),
  );

  const m = compilePlan(net);
  try {
    assert.equal(m.plan.relus, countRelus(spec).total);
    const top1 = (v: ArrayLike<number>) => Array.from(v).indexOf(Math.max(...Array.from(v)));
    for (let i = 0; i < n; i++) {
      const xi = x.slice(i * 64, (i + 1) * 64);
      const plain = top1(tidy(() => noGrad(() => net.forward(tensor(xi, [1, 1, 8, 8])).toFloat32())));
      const ref = referenceForward(m, quantize(xi, m.plan.fixed.f));
      const [sc, cc] = channelPair();
      const opts = { preprocess: 'he', relu: 'ot' };
      const [, client] = await Promise.all([serveClient(sc, m, opts), runClient(cc, xi, opts)]);
      assert.equal(top1(client.logits), plain, `image ${i}: secure top-1 ${top1(client.logits)}, plaintext ${plain}`);
      assert.equal(top1(ref.logits), plain, `image ${i}: fixed-point top-1`);
    }
  } finally {
    m.dispose();
  }
});
