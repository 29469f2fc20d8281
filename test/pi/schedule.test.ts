// The offline schedule (schedule.ts): the whole offline phase before the image, layer by layer, or ahead within a byte
// budget. The secure result does not depend on the mode (dealer + gc: bit for bit; he + ot: the reference's top-1,
// logits within the truncation error), a streamed session holds less (each party's peak held bytes), the server
// decides the mode, and a client refuses a malformed schedule.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { PROTOCOL, runClient, serveClient, type ClientResult, type SessionOptions } from '../../src/pi/protocol.js';
import {
  checkSchedule,
  heldEstimate,
  lastUses,
  parseOffline,
  planDeadlines,
  planLayers,
  planSchedule,
  type OfflineMode,
} from '../../src/pi/schedule.js';
import { Dealer } from '../../src/pi/node/dealer.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';
import { opInputs } from '../../src/pi/plan.js';
import { PiError } from '../../src/pi/wire.js';

manualSeed(21);
// resnet18-imagenet, narrow: a max-pool stem, 1x1 downsampling convolutions, 10 layers
const net = buildNetwork(
  specFor('resnet18-imagenet', { alpha: 0.125, inputSize: 32, numClasses: 10, blocks: [1, 1, 1, 1] }),
).eval();
const model = compilePlan(net);
net.dispose();
const dealer = new Dealer(model);
// resnet18 (CIFAR layout), narrow: layers of comparable size, where streaming pays (no one layer dominates)
const cifarNet = buildNetwork(
  specFor('resnet18', { alpha: 0.125, inputSize: 32, numClasses: 10, blocks: [1, 1, 1, 1] }),
).eval();
const cifar = compilePlan(cifarNet);
cifarNet.dispose();
after(() => {
  model.dispose();
  cifar.dispose();
});
const plan = model.plan;
const n = plan.ops[0]!.size;
const image = (seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 977 + i * 1.3) * 2);
const argmax = (v: ArrayLike<number>) => Array.from(v).reduce((b, x, i, a) => (x > a[b]! ? i : b), 0);
const maxUlps = (a: BigInt64Array, b: BigInt64Array) =>
  Math.max(...Array.from(a, (v, i) => Number(v > b[i]! ? v - b[i]! : b[i]! - v)));

async function query(
  x: Float32Array,
  relu: string,
  preprocess: string,
  server: OfflineMode | undefined,
  client: OfflineMode | undefined,
  m = model,
) {
  const [s, c] = channelPair();
  const o: SessionOptions = { relu, preprocess, ...(preprocess === 'dealer' ? { dealer: dealer.link() } : {}) };
  const [srv, cl] = await Promise.all([
    serveClient(s, m, { ...o, ...(server ? { offline: server } : {}) }),
    runClient(c, x, { ...o, ...(client ? { offline: client } : {}) }),
  ]);
  return { server: srv, client: cl };
}
/** Whether the client did offline work after it sent its input (a streamed session). */
const streamedRun = (r: ClientResult) => {
  const e = r.client.entries,
    k = e.findIndex((x) => x.kind === 'input');
  return e.slice(k + 1).some((x) => x.phase === 'offline');
};

test('schedules: all is one segment, layer one per conv/fc, a budget groups layers; lastUses; parsing', () => {
  const linear = plan.ops.flatMap((o, i) => (o.op === 'conv' || o.op === 'fc' ? [i] : []));
  assert.deepEqual(planSchedule(plan, { mode: 'all' }), [0]);
  const layers = planSchedule(plan, { mode: 'layer' });
  assert.deepEqual(layers, [0, ...linear.slice(1)]);
  assert.deepEqual(planLayers(plan), layers);
  // a budget of everything is one segment; of one byte, one layer each; in between, fewer segments than layers
  const total = heldEstimate(plan, 0, plan.ops.length);
  assert.deepEqual(planSchedule(plan, { mode: 'budget', bytes: total }), [0]);
  assert.deepEqual(planSchedule(plan, { mode: 'budget', bytes: 1 }), layers);
  const mid = planSchedule(plan, { mode: 'budget', bytes: Math.ceil(total / 4) });
  assert.ok(mid.length > 1 && mid.length < layers.length, `budget/4: ${mid.length} segments of ${layers.length}`);
  mid.forEach((s) => assert.ok(layers.includes(s)));
  // every value's last reader reads it, and nothing after it does
  const last = lastUses(plan);
  plan.ops.forEach((o, i) => {
    for (const j of opInputs(o)) assert.ok(last[j]! >= i);
  });
  assert.equal(last[plan.ops.length - 1], plan.ops.length);
  assert.deepEqual(parseOffline('512M'), { mode: 'budget', bytes: 512 * 1024 ** 2 });
  assert.deepEqual(parseOffline('layer'), { mode: 'layer' });
  assert.throws(() => parseOffline('lots'), /--offline/);
  for (const bad of [[], [1], [0, 0], [0, 3, 2], [0, plan.ops.length], [0, 1.5], 'all'])
    assert.throws(() => checkSchedule(bad, plan, 'peer'), /schedule/, JSON.stringify(bad));
  // a streamed session's online deadline carries the offline work
  const dl = { offlineMs: 600_000, onlineMs: 120_000, idleMs: 60_000, onlineIdleMs: 10_000 };
  const s = planDeadlines(plan, dl, {}, true);
  assert.equal(s.onlineMs, s.offlineMs + planDeadlines(plan, dl, {}, false).onlineMs);
  assert.equal(s.onlineIdleMs, s.idleMs);
});

test('dealer + gc: bit for bit the same result (the reference) in every mode', async () => {
  const x = image(1);
  const ref = referenceForward(model, quantize(x, plan.fixed.f));
  const modes: OfflineMode[] = [
    { mode: 'all' },
    { mode: 'layer' },
    { mode: 'budget', bytes: Math.ceil(heldEstimate(plan, 0, plan.ops.length) / 4) },
  ];
  const runs = [];
  for (const m of modes) runs.push(await query(x, 'gc', 'dealer', undefined, m));
  runs.forEach((r, k) => {
    assert.deepEqual(r64ToBig(r.client.out), r64ToBig(ref.out), `mode ${modes[k]!.mode}`);
    assert.equal(streamedRun(r.client), k > 0, `mode ${modes[k]!.mode}: streamed`);
  });
});

test('he + ot: every mode gives the reference top-1 within the truncation error; the server decides the mode', async () => {
  for (const seed of [2, 3]) {
    const x = image(seed);
    const ref = referenceForward(model, quantize(x, plan.fixed.f));
    // the client asks for all; the server streams
    const layer = await query(x, 'ot', 'he', { mode: 'layer' }, { mode: 'all' });
    // the client asks for layer; the server has no preference
    const asked = await query(x, 'ot', 'he', undefined, { mode: 'layer' });
    const all = await query(x, 'ot', 'he', undefined, undefined);
    assert.ok(streamedRun(layer.client));
    assert.ok(streamedRun(asked.client));
    assert.ok(!streamedRun(all.client));
    for (const r of [layer, asked, all]) {
      assert.equal(argmax(r.client.logits), argmax(ref.logits), `image ${seed}: top-1`);
      const d = maxUlps(r64ToBig(r.client.out), r64ToBig(ref.out));
      assert.ok(d < 2 ** (r.client.scale - 8), `image ${seed}: ${d} ULPs`);
    }
  }
});

test('layer mode holds less than all (the peak bytes each party held, he + ot and dealer + gc), a budget in between', async (t) => {
  const x = Float32Array.from({ length: cifar.plan.ops[0]!.size }, (_, i) => Math.cos(i * 0.7));
  const ref = referenceForward(cifar, quantize(x, cifar.plan.fixed.f));
  for (const [relu, preprocess] of [
    ['ot', 'he'],
    ['gc', 'dealer'],
  ] as const) {
    const cd = preprocess === 'dealer' ? new Dealer(cifar) : null;
    const budget: OfflineMode = {
      mode: 'budget',
      bytes: Math.ceil(heldEstimate(cifar.plan, 0, cifar.plan.ops.length, relu) / 3),
    };
    const run = async (m: OfflineMode) => {
      const [s, c] = channelPair();
      const o: SessionOptions = { relu, preprocess, offline: m, ...(cd ? { dealer: cd.link() } : {}) };
      const [server, client] = await Promise.all([serveClient(s, cifar, o), runClient(c, x, o)]);
      assert.equal(argmax(client.logits), argmax(ref.logits));
      return { server: server.memory.peakHeldBytes, client: client.client.memory.peakHeldBytes };
    };
    const all = await run({ mode: 'all' }),
      layer = await run({ mode: 'layer' }),
      mid = await run(budget);
    t.diagnostic(
      `${relu}/${preprocess}: all ${JSON.stringify(all)}, layer ${JSON.stringify(layer)}, budget ${JSON.stringify(mid)}`,
    );
    // he: each party's HE working memory (sized by the largest layer, never shrinks) is held in every mode
    const ratio = preprocess === 'he' ? 0.8 : 0.5;
    for (const p of ['server', 'client'] as const) {
      assert.ok(
        layer[p] < ratio * all[p],
        `${relu}/${preprocess} ${p}: layer ${layer[p]} vs all ${all[p]} bytes held at the peak`,
      );
      assert.ok(
        mid[p] < all[p] && mid[p] >= layer[p],
        `${relu}/${preprocess} ${p}: budget ${mid[p]} (layer ${layer[p]}, all ${all[p]})`,
      );
    }
  }
});

test('a client refuses a malformed schedule (MALFORMED), and the server one it cannot parse in the hello', async () => {
  const [s, c] = channelPair();
  const client = runClient(c, image(4), { relu: 'ot', preprocess: 'he' });
  await s.recv();
  s.sendJson({ plan, batch: 16384, schedule: [0, 5, 5] });
  await assert.rejects(client, (e: unknown) => e instanceof PiError && e.code === 'MALFORMED');
  s.close();
  const [s2, c2] = channelPair();
  const server = serveClient(s2, model, { relu: 'ot', preprocess: 'he' });
  c2.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'ot', session: 'ab'.repeat(16), offline: -1 });
  await assert.rejects(server, (e: unknown) => e instanceof PiError && e.code === 'MALFORMED');
  c2.close();
});
