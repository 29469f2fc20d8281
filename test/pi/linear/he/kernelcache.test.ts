// The server's kernel cache (linear/he/preprocess.ts): kernels kept across sessions give the same messages as
// kernels transformed afresh, stay within the budget, and are keyed by weights and packing (another weights array
// of the same layer shape misses).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { HePreprocessor, kernelCacheBytes, kernelCacheHeld } from '../../../../src/pi/linear/he/preprocess.js';
import { RingConv2d } from '../../../../src/pi/node/ring.js';
import { HE_PARAMS } from '../../../../src/pi/he/params.js';
import type { ConvGeometry } from '../../../../src/pi/ringlinear.js';
import { channelPair, type Channel } from '../../../../src/pi/transport/channel.js';
import type { LinearShape } from '../../../../src/pi/linear/index.js';
import { randomR64, seededRandom } from '../../../../src/pi/random.js';

const MAXW = 2 ** 15 - 1;
const geom: ConvGeometry = {
  inShape: [8, 8, 8],
  outShape: [16, 8, 8],
  kernel: 3,
  stride: 1,
  padding: 1,
  dilation: 1,
  groups: 1,
};
const shape: LinearShape = { op: 1, name: 'conv', inSize: 8 * 64, outSize: 16 * 64, geom, maxWeight: MAXW };
const weights = (seed: number) =>
  Float64Array.from({ length: 16 * 8 * 9 }, (_, i) => ((i * 2654435761 + seed * 97) % (2 * MAXW + 1)) - MAXW);
const layers: RingConv2d[] = [];
after(() => {
  for (const l of layers) l.dispose();
  kernelCacheBytes(128 * 2 ** 20);
});

/** One session of one layer with fixed coins: every message the server sent, and the client's output. */
async function session(layer: RingConv2d): Promise<{ sent: Uint8Array[]; out: Uint32Array }> {
  const [a, b] = channelPair();
  const sent: Uint8Array[] = [];
  const tap: Channel = Object.assign(Object.create(Object.getPrototypeOf(a)), a, {
    send: (m: Uint8Array) => {
      sent.push(m.slice());
      a.send(m);
    },
  });
  const srv = new HePreprocessor(),
    cli = new HePreprocessor();
  const c = randomR64(seededRandom('kernel-cache input'), shape.inSize);
  const [, y] = await Promise.all([
    srv.server({ peer: tap, dealer: null, random: seededRandom('server') }, shape, layer),
    cli.client({ peer: b, dealer: null, random: seededRandom('client') }, shape, c),
  ]);
  return { sent, out: y.lo };
}

test('kernel cache: warm sessions send the same bytes as cold ones; budget and keys hold', async () => {
  const layer = new RingConv2d('conv', weights(1), geom);
  layers.push(layer);
  kernelCacheBytes(0);
  const cold = await session(layer);
  assert.equal(kernelCacheHeld(), 0, 'budget 0: nothing is kept');
  kernelCacheBytes(256 * 2 ** 20);
  const fill = await session(layer);
  const held = kernelCacheHeld();
  assert.ok(held > 0, 'the first session fills the cache');
  const warm = await session(layer);
  assert.equal(kernelCacheHeld(), held, 'a warm session adds nothing');
  for (const x of [fill, warm]) {
    assert.equal(x.sent.length, cold.sent.length);
    x.sent.forEach((m, i) => assert.deepEqual(m, cold.sent[i], `server message ${i}`));
    assert.deepEqual(x.out, cold.out);
  }
  // Other weights of the same shape: a miss, so the responses differ (the cache is keyed by the weights).
  const other = new RingConv2d('conv', weights(2), geom);
  layers.push(other);
  const o = await session(other);
  assert.ok(kernelCacheHeld() > held, 'new weights add entries');
  assert.notDeepEqual(o.sent[o.sent.length - 1], cold.sent[cold.sent.length - 1]);
  // A budget below one kernel polynomial (L x n words) keeps nothing.
  kernelCacheBytes(4 * HE_PARAMS.primes.length * HE_PARAMS.n - 1);
  await session(layer);
  assert.equal(kernelCacheHeld(), 0);
});
