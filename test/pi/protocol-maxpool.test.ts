// A network with a max-pool stem (resnet18-imagenet: 7x7/2 conv, 3x3/2 max pool with padding 1) under PI: the plan
// carries the max pool, the fixed-point reference computes it exactly, and the secure result equals the reference
// (he + ot: top-1 and logits within the local truncation's error; dealer + gc: bit for bit; ot-online), the max pool's
// levels run as ReLU batches of their comparisons. Privacy: with coupled masks (gc: each level's mask shifted by the
// difference of its plaintext ReLU outputs), every online value of the server is byte-identical for two images.
// Mutation tried: the client's level masks set to zero keeps every result right and fails the privacy test only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, countRelus, describeNetwork, runGraph, specFor } from '../../src/models/index.js';
import { manualSeed, noGrad, tensor, tidy } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { checkPlan, maxPoolSites, planComparisons } from '../../src/pi/plan.js';
import { runClient, serveClient } from '../../src/pi/protocol.js';
import { Dealer } from '../../src/pi/node/dealer.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';
import { seededClientRandomness, seededRandom, serverRandomness } from '../../src/pi/random.js';
import { coupledClientRandomness, shareBytes, simulate } from './helpers/simulation.js';
import { transcriptDifference } from './helpers/transcript.js';

manualSeed(11);
const spec = specFor('resnet18-imagenet', { alpha: 0.125, inputSize: 32, numClasses: 10, blocks: [1, 1, 1, 1] });
const net = buildNetwork(spec).eval();
const nodes = describeNetwork(net);
const model = compilePlan(net);
const dealer = new Dealer(model);
after(() => model.dispose());
const n = 3 * 32 * 32;
const image = (seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);
const float = (x: Float32Array) => tidy(() => noGrad(() => runGraph(nodes, tensor(x, [1, 3, 32, 32])).toFloat32()));
const argmax = (v: ArrayLike<number>) => Array.from(v).reduce((b, x, i, a) => (x > a[b]! ? i : b), 0);
const maxUlps = (a: BigInt64Array, b: BigInt64Array) =>
  Math.max(...Array.from(a, (v, i) => Number(v > b[i]! ? v - b[i]! : b[i]! - v)));

async function query(x: Float32Array, relu: string, preprocess: string) {
  const [s, c] = channelPair();
  const o = { relu, preprocess, ...(preprocess === 'dealer' ? { dealer: dealer.link() } : {}) };
  const [server, client] = await Promise.all([serveClient(s, model, o), runClient(c, x, o)]);
  return { server, client };
}

test('plan: the max-pool stem compiles to a checked maxpool op (3x3/2, padding 1, width one over its ReLU)', () => {
  const plan = checkPlan(JSON.parse(JSON.stringify(model.plan)), 'test');
  const pools = plan.ops.filter((o) => o.op === 'maxpool');
  assert.equal(pools.length, 1);
  const p = pools[0]!;
  assert.ok(p.op === 'maxpool');
  assert.deepEqual([p.geom.kernel, p.geom.stride, p.geom.padding], [3, 2, 1]);
  assert.deepEqual(p.geom.inShape, [8, 16, 16]);
  assert.deepEqual(p.shape, [8, 8, 8]);
  assert.equal(p.width, plan.fixed.f + plan.fixed.reluIntBits + 2);
  // the ReLU count is unchanged; the comparisons are counted apart, the same in the plan and in `count`
  const c = countRelus(spec);
  assert.equal(plan.relus, c.total);
  assert.equal(planComparisons(plan), c.maxPoolComparisons);
  assert.equal(c.maxPoolComparisons, 8 * (23 * 23 - 64));
  // the reference equals the float network's max pool (up to the fixed-point error)
  const x = image(1),
    ref = referenceForward(model, quantize(x, plan.fixed.f));
  const fl = float(x);
  fl.forEach((v, i) =>
    assert.ok(Math.abs(v - ref.logits[i]!) < 0.02, `logit ${i}: float ${v}, reference ${ref.logits[i]}`),
  );
});

test('he + ot: secure top-1 equals the reference, logits within the local truncation error; one ReLU op per level', async () => {
  for (const seed of [1, 2]) {
    const x = image(seed);
    const { client } = await query(x, 'ot', 'he');
    const ref = referenceForward(model, quantize(x, model.plan.fixed.f));
    assert.equal(argmax(client.logits), argmax(ref.logits), `image ${seed}: top-1`);
    const d = maxUlps(r64ToBig(client.out), r64ToBig(ref.out));
    assert.ok(d < 2 ** (client.scale - 8), `image ${seed}: ${d} ULPs`);
    const i = model.plan.ops.findIndex((o) => o.op === 'maxpool');
    const e = client.client.entries.filter((x) => x.phase === 'online' && x.kind === 'maxpool');
    assert.equal(e.length, 1);
    assert.equal(e[0]!.relus, planComparisons(model.plan));
    // 4 levels (9-element windows), each a ReLU op of width 34: 33-bit comparisons, 9 leaves, Λ = 4, Λ + 4 flights
    assert.equal(maxPoolSites(model.plan, i).length, 4);
    assert.equal(e[0]!.rounds, 4 * 8);
  }
});

test('dealer + gc: bit for bit the reference; dealer + ot-online: within the truncation error', async () => {
  const x = image(3);
  const ref = referenceForward(model, quantize(x, model.plan.fixed.f));
  const gc = await query(x, 'gc', 'dealer');
  assert.deepEqual(r64ToBig(gc.client.out), r64ToBig(ref.out));
  const oo = await query(x, 'ot-online', 'dealer');
  assert.equal(argmax(oo.client.logits), argmax(ref.logits));
  assert.ok(maxUlps(r64ToBig(oo.client.out), r64ToBig(ref.out)) < 2 ** (oo.client.scale - 8));
});

test('privacy (dealer, gc): coupled masks, the max pool levels included: every online value of the server is byte-identical for two images', async () => {
  const xa = image(4),
    xb = image(5);
  const fixed = { server: serverRandomness(seededRandom('s/server')), dealer: seededRandom('s/dealer') };
  const a = await simulate({
    model,
    image: xa,
    client: seededClientRandomness('c1'),
    ...fixed,
    preprocess: 'dealer',
    relu: 'gc',
  });
  const b = await simulate({
    model,
    image: xb,
    client: coupledClientRandomness('c1', model, xa, xb),
    server: serverRandomness(seededRandom('s/server')),
    dealer: seededRandom('s/dealer'),
    preprocess: 'dealer',
    relu: 'gc',
  });
  const inA = a.server.received(['online'], 'client')[0]!,
    inB = b.server.received(['online'], 'client')[0]!;
  assert.equal(transcriptDifference([inA], [inB]), null);
  assert.equal(a.serverValues.size, model.plan.ops.length);
  for (const [op, v] of a.serverValues)
    assert.deepEqual(shareBytes(b.serverValues.get(op)!), shareBytes(v), `op ${op} (${model.plan.ops[op]!.name})`);
  assert.notDeepEqual(r64ToBig(a.client.out), r64ToBig(b.client.out));
});
