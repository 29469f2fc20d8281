import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { HePreprocessor, type HeOptions, type HeParallel } from '../../../../src/pi/linear/he/preprocess.js';
import { WorkerPool } from '../../../../src/pi/node/workers/pool.js';
import { RingConv2d, RingFc } from '../../../../src/pi/node/ring.js';
import type { ConvGeometry, RingLinear } from '../../../../src/pi/ringlinear.js';
import { channelPair } from '../../../../src/pi/transport/channel.js';
import { r64Sub, r64ToBig } from '../../../../src/pi/fixed.js';
import type { LinearShape } from '../../../../src/pi/linear/index.js';
import { r64Random, systemRandom } from '../../../../src/pi/random.js';
import { ConvLayout, convGeometry, type Packing } from '../../../../src/pi/he/layout.js';

const MAXW = 2 ** 15 - 1;
const layers: RingLinear[] = [];
after(() => {
  for (const l of layers) l.dispose();
});

function randomWeights(k: number, seed: number): Float64Array {
  let s = seed >>> 0;
  // full 16-bit range, the extremes included
  return Float64Array.from({ length: k }, (_, i) =>
    i < 2
      ? i
        ? -MAXW
        : MAXW
      : Math.floor(((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * (2 * MAXW + 1)) - MAXW,
  );
}

function conv(
  name: string,
  C: number,
  H: number,
  O: number,
  kernel: number,
  stride: number,
  padding: number,
  groups = 1,
  dilation = 1,
): { shape: LinearShape; layer: RingConv2d } {
  const Ho = Math.floor((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
  const geom: ConvGeometry = { inShape: [C, H, H], outShape: [O, Ho, Ho], kernel, stride, padding, dilation, groups };
  const layer = new RingConv2d(name, randomWeights(O * (C / groups) * kernel * kernel, C * 131 + O), geom);
  layers.push(layer);
  return { shape: { op: 3, name, inSize: C * H * H, outSize: O * Ho * Ho, geom, maxWeight: MAXW }, layer };
}

function fc(name: string, inSize: number, outSize: number): { shape: LinearShape; layer: RingFc } {
  const layer = new RingFc(name, randomWeights(inSize * outSize, inSize), inSize, outSize);
  layers.push(layer);
  return { shape: { op: 9, name, inSize, outSize, maxWeight: MAXW }, layer };
}

/**
 * One layer through the preprocessor: the client's M c - s plus the server's s must equal M c mod 2^64 up to the
 * linear layers' error, a carry in {-1, 0, 1} per output (the noise region is uniform: docs/pi-he.md). Both parties
 * get the packing option (the server computes the plan's packing itself and refuses another).
 */
async function check(
  l: { shape: LinearShape; layer: RingLinear },
  o: HeOptions = {},
  server: HeOptions = {},
): Promise<void> {
  const [a, b] = channelPair();
  const srv = new HePreprocessor({ ...(o.packing ? { packing: o.packing } : {}), ...server }),
    cli = new HePreprocessor(o);
  for (let round = 0; round < 2; round++) {
    // the second layer of a session reuses the keys
    const c = r64Random(l.shape.inSize),
      got0 = b.stats().bytesRecv;
    const [s, y] = await Promise.all([
      srv.server({ peer: a, dealer: null, random: systemRandom }, l.shape, l.layer),
      cli.client({ peer: b, dealer: null, random: systemRandom }, l.shape, c),
    ]);
    const want = r64ToBig(r64Sub(l.layer.apply(c), s)),
      got = r64ToBig(y);
    let carries = 0;
    got.forEach((v, i) => {
      const d = BigInt.asIntN(64, v - want[i]!);
      assert.ok(d >= -1n && d <= 1n, `${l.shape.name}, round ${round}, output ${i}: off by ${d}`);
      if (d) carries++;
    });
    // the carry's rate: about E|noise| / 2^14 at 2^78 (the switch's rounding, |.| <= 1024 + n / 2): a few percent
    assert.ok(
      carries <= Math.max(8, 0.1 * got.length),
      `${l.shape.name}: ${carries} of ${got.length} outputs off by 1`,
    );
    // the layer's responses are one flight, which the client's buffer limit is sized for
    assert.equal(
      b.stats().bytesRecv - got0,
      cli.maxMessageBytes([l.shape]).flightToClient,
      `${l.shape.name}: response bytes`,
    );
    assert.ok(srv.lastComputeMs() > 0 && cli.lastComputeMs() > 0);
  }
}

test('HE conv and fc equal the plaintext ring result mod 2^64 (random 64-bit shares, 16-bit weights)', async () => {
  await check(conv('3x3 stride 1 pad 1', 6, 12, 8, 3, 1, 1));
  await check(conv('3x3 stride 2 pad 1', 5, 12, 7, 3, 2, 1));
  await check(conv('1x1 stride 2 downsample', 8, 10, 12, 1, 2, 0));
  await check(conv('depthwise 1x1 (lone BatchNorm)', 6, 7, 6, 1, 1, 0, 6));
  await check(conv('grouped 3x3, dilation 2', 4, 9, 4, 3, 1, 2, 2, 2));
  await check(fc('fc 512 -> 100', 512, 100));
});

test('layers that need several ciphertexts (tiles, input and output groups)', async () => {
  const l = conv('3x3, 16 channels at 20x20', 16, 20, 24, 3, 1, 1);
  const packing = (): Packing => ({ th: 7, tw: 10, cw: 5, on: 7 });
  const layout = new ConvLayout(convGeometry(l.shape.geom!), packing(), 8192, 'x');
  assert.ok(
    layout.tiles > 1 && layout.inGroups > 1 && layout.outGroups > 1,
    `${layout.tiles} tiles, ${layout.inGroups} x ${layout.outGroups} groups`,
  );
  await check(l, { packing });
  // and with the cost model's own choice for a layer larger than one ciphertext
  const big = conv('3x3, 32 channels at 32x32', 32, 32, 32, 3, 1, 1);
  await check(big);
});

test("the server's worker threads compute some output groups: the same result, responses still in group order; after the pool is gone the session's thread does it all", async () => {
  const pool = new WorkerPool(2);
  let dealt = 0;
  const counting: HeParallel = {
    threads: pool.threads,
    get alive() {
      return pool.alive;
    },
    groups: (job, ogs) => {
      dealt += ogs.length;
      return pool.groups(job, ogs);
    },
  };
  try {
    const l = conv('3x3, 16 channels at 20x20', 16, 20, 24, 3, 1, 1);
    const packing = (): Packing => ({ th: 7, tw: 10, cw: 5, on: 3 });
    const layout = new ConvLayout(convGeometry(l.shape.geom!), packing(), 8192, 'x');
    assert.ok(layout.outGroups >= 6, `${layout.outGroups} output groups`);
    await check(l, { packing }, { parallel: counting });
    // two layers of a session: 2 x (outGroups minus every third group, which this thread keeps)
    assert.equal(dealt, 2 * (layout.outGroups - Math.ceil(layout.outGroups / 3)));
    await check(fc('fc 512 -> 100', 512, 100), {}, { parallel: counting });
  } finally {
    await pool.close();
  }
  assert.equal(pool.alive, false);
  const before = dealt;
  await check(
    conv('3x3, 16 channels at 20x20', 16, 20, 24, 3, 1, 1),
    { packing: () => ({ th: 7, tw: 10, cw: 5, on: 3 }) },
    { parallel: counting },
  );
  assert.equal(dealt, before);
});
