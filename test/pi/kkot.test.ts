import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelPair } from '../../src/pi/transport/channel.js';
import { KK_CODE_BITS, KK_MAX_N, kkCodeword, KkReceiver, KkSender, type KkPlanesHelper } from '../../src/pi/ot/kkot.js';
import { WorkerPool } from '../../src/pi/node/workers/pool.js';
import { otSession } from '../../src/pi/ot/session.js';
import { baseOtMessageBytes, POINT_BYTES } from '../../src/pi/ot/baseot.js';
import { cotChoiceCorrection, cotReceiveOnline, cotSendOnline, rotReceive64, rotSend64 } from '../../src/pi/ot/cot.js';
import { systemRandom } from '../../src/pi/random.js';

const randomBytes = (n: number) => systemRandom.bytes(n);
import { getBit, newBits, setBit } from '../../src/pi/bits.js';
import { r64FromBig, r64ToBig } from '../../src/pi/fixed.js';
import { tapReceived } from './helpers/transcript.js';

const ones = (b: Uint8Array) => {
  let c = 0;
  for (const x of b) for (let k = 0; k < 8; k++) c += (x >>> k) & 1;
  return c / (8 * b.length);
};

test('KK13 1-out-of-N: random and chosen-message OT for N = 2, 16, 256, edge choices; the sender sees uniform rows', async () => {
  const [s, r] = channelPair();
  const seen = tapReceived(s);
  const [S, R] = await Promise.all([KkSender.setup(s), KkReceiver.setup(r)]);
  for (const N of [2, 16, 256]) {
    for (const m of [1, 37, 3000]) {
      const c = Uint8Array.from({ length: m }, (_, j) => (j === 0 ? 0 : j === 1 ? N - 1 : randomBytes(1)[0]! % N));
      const [pads, got] = await Promise.all([S.sendRandom(m, N, 16), R.receiveRandom(c, m, N, 16)]);
      for (let j = 0; j < m; j++) {
        assert.deepEqual(
          got.subarray(16 * j, 16 * j + 16),
          pads.subarray(16 * (j * N + c[j]!), 16 * (j * N + c[j]! + 1)),
          `N=${N} OT ${j}`,
        );
        // The other pads differ from the chosen one (the receiver cannot know them; here: they are not equal).
        const other = (c[j]! + 1) % N;
        assert.notDeepEqual(
          pads.subarray(16 * (j * N + other), 16 * (j * N + other + 1)),
          got.subarray(16 * j, 16 * j + 16),
        );
      }
      const msgs = randomBytes(m * N * 3);
      const [, mc] = await Promise.all([S.sendChosen(msgs, m, N, 3), R.receiveChosen(c, m, N, 3)]);
      for (let j = 0; j < m; j++)
        assert.deepEqual(mc.subarray(3 * j, 3 * j + 3), msgs.subarray(3 * (j * N + c[j]!), 3 * (j * N + c[j]! + 1)));
    }
  }
  // One-byte pads (as the millionaire's leaves use them) agree with the first byte of the 16-byte ones' positions.
  const c1 = Uint8Array.from({ length: 500 }, (_, j) => j % 16);
  const [p1, g1] = await Promise.all([S.sendRandom(500, 16, 1), R.receiveRandom(c1, 500, 16, 1)]);
  for (let j = 0; j < 500; j++) assert.equal(g1[j], p1[16 * j + c1[j]!]);
  // The sender's view: the matrix is 32 bytes per OT and uniform whatever the choices.
  const m = 4096,
    views: Uint8Array[] = [];
  for (const v of [0, 15]) {
    const before = seen.length;
    await Promise.all([S.sendRandom(m, 16, 1), R.receiveRandom(new Uint8Array(m).fill(v), m, 16, 1)]);
    views.push(seen[before]!);
  }
  for (const u of views) {
    assert.equal(u.length, 32 * m);
    assert.ok(Math.abs(ones(u) - 0.5) < 0.003, `ones fraction ${ones(u)}`);
  }
  assert.ok(Math.abs(ones(views[0]!.map((x, i) => x ^ views[1]![i]!)) - 0.5) < 0.003);
  assert.throws(() => R.extend(Uint8Array.of(16), 1, 16), /choice 16 of OT 0 is not below N=16/);
  assert.throws(() => R.extend(new Uint8Array(2), 3, 16), /2 choices for m=3/);
});

test('KK13 code: 256 Walsh-Hadamard codewords, every two at distance exactly 128 (the security parameter)', () => {
  const pop = (x: number) => {
    let c = 0;
    for (x >>>= 0; x; x &= x - 1) c++;
    return c;
  };
  let min = 256,
    max = 0;
  const cw = Array.from({ length: KK_MAX_N }, (_, i) => kkCodeword(i));
  for (let i = 0; i < KK_MAX_N; i++)
    for (let j = i + 1; j < KK_MAX_N; j++) {
      let d = 0;
      for (let w = 0; w < 8; w++) d += pop(cw[i]![w]! ^ cw[j]![w]!);
      min = Math.min(min, d);
      max = Math.max(max, d);
    }
  assert.equal(min, 128);
  assert.equal(max, 128);
  assert.equal(KK_CODE_BITS, 256);
});

test('KK13: a matrix of the wrong size is named', async () => {
  const [s, r] = channelPair();
  const [S] = await Promise.all([KkSender.setup(s), KkReceiver.setup(r)]);
  const p = S.extend(10); // padded to 32 OTs: 256 columns of 4 bytes
  r.send(new Uint8Array(32 * 9));
  await assert.rejects(p, /KK13 OT extension matrix: expected 1024 bytes, got 288/);
});

test('OT session: one batch of base OTs seeds IKNP both ways and KK13; both parties send and receive', async () => {
  const [s, c] = channelPair();
  const [S, C] = await Promise.all([otSession(s, 'server', systemRandom), otSession(c, 'client', systemRandom)]);
  assert.ok(S.kkSender && C.kkReceiver && !S.kkReceiver && !C.kkSender);
  // 128 base OTs (the server receives the sender point A, the client 128 receiver points), A's matrix for 128 OTs
  // (to the server) and B's for 256 (to the client): nothing else.
  assert.equal(s.stats().bytesRecv, POINT_BYTES + 16 * 128);
  assert.equal(c.stats().bytesRecv, baseOtMessageBytes(128) + 16 * 256);
  for (const [snd, rcv] of [
    [S.sender, C.receiver],
    [C.sender, S.receiver],
  ] as const) {
    const m = 1000,
      bits = randomBytes(m / 8);
    const [pair, got] = await Promise.all([snd.sendRandom(m), rcv.receiveRandom(bits, m)]);
    for (let j = 0; j < m; j++) {
      const b = (bits[j >>> 3]! >>> (j & 7)) & 1;
      assert.deepEqual(got.subarray(16 * j, 16 * j + 16), (b ? pair.m1 : pair.m0).subarray(16 * j, 16 * j + 16));
    }
  }
  const ch = Uint8Array.from({ length: 300 }, (_, j) => j % 16);
  const [pads, got] = await Promise.all([
    S.kkSender!.sendRandom(300, 16, 2),
    C.kkReceiver!.receiveRandom(ch, 300, 16, 2),
  ]);
  for (let j = 0; j < 300; j++)
    assert.deepEqual(got.subarray(2 * j, 2 * j + 2), pads.subarray(2 * (16 * j + ch[j]!), 2 * (16 * j + ch[j]! + 1)));
});

test('additive COT over Z_2^64 from random OT: x0 + b*delta for edge correlations, both directions', async () => {
  const [s, c] = channelPair();
  const [S, C] = await Promise.all([otSession(s, 'server', systemRandom), otSession(c, 'client', systemRandom)]);
  const M = 2n ** 64n;
  const deltas = [0n, 1n, M - 1n, M / 2n, M / 2n - 1n, 12345678901234567n];
  const m = 2 * deltas.length;
  const delta = r64FromBig(Array.from({ length: m }, (_, j) => deltas[j % deltas.length]!));
  for (const [snd, rcv] of [
    [S.sender, C.receiver],
    [C.sender, S.receiver],
  ] as const) {
    const [ps, pr] = await Promise.all([rotSend64(snd, m), rotReceive64(rcv, m, systemRandom)]);
    const b = newBits(m);
    for (let j = 0; j < m; j++) setBit(b, j, j < deltas.length ? 0 : 1);
    const e = cotChoiceCorrection(pr, b);
    const { x0, y } = cotSendOnline(ps, e, delta);
    const xb = cotReceiveOnline(pr, b, y);
    const X0 = r64ToBig(x0),
      XB = r64ToBig(xb),
      D = r64ToBig(delta);
    for (let j = 0; j < m; j++) {
      const want = BigInt.asUintN(64, X0[j]! + (j < deltas.length ? 0n : D[j]!));
      assert.equal(BigInt.asUintN(64, XB[j]!), want, `OT ${j}`);
    }
  }
  // What the sender sees of the receiver's choice, e = b ⊕ ρ, is padded by the random choice ρ: for all-one choices
  // about half of e is 1 (a fixed ρ would send b itself).
  const big = 4096,
    [, pr] = await Promise.all([rotSend64(S.sender, big), rotReceive64(C.receiver, big, systemRandom)]);
  const ones = newBits(big);
  for (let j = 0; j < big; j++) setBit(ones, j, 1);
  const e = cotChoiceCorrection(pr, ones);
  let k = 0;
  for (let j = 0; j < big; j++) k += getBit(e, j);
  assert.ok(
    Math.abs(k - big / 2) < (6 * Math.sqrt(big)) / 2,
    `${k} of ${big} choice corrections are 1 for all-one choices`,
  );
});

test('KK13 pad planes: a batch hashed in two slices (the second on a server worker thread) equals it hashed whole; without the pool, here', async () => {
  const [a] = channelPair();
  const s = systemRandom.bytes(32),
    keys = Array.from({ length: KK_CODE_BITS }, () => systemRandom.bytes(16));
  const kk = KkSender.fromBase(a, s, keys);
  const m = 5000,
    q = new Int32Array(systemRandom.bytes(32 * m).buffer),
    batch = { m, first: 77, q };
  const whole = kk.padPlanes(batch, 16, 2);
  const pool = new WorkerPool(1);
  try {
    let asked = 0;
    const helper: KkPlanesHelper = {
      kkPlanes: (...args) => {
        asked++;
        return pool.kkPlanes(...args);
      },
    };
    assert.deepEqual(await kk.padPlanesShared(batch, 16, 2, helper), whole);
    assert.equal(asked, 1);
    // a small batch stays on this thread
    const small = { m: 100, first: 77, q: q.slice(0, 800) };
    assert.deepEqual(await kk.padPlanesShared(small, 16, 2, helper), kk.padPlanes(small, 16, 2));
    assert.equal(asked, 1);
    // the slice's OT counter matters: the second half hashed at the wrong counter differs
    const h = m >>> 1,
      shifted = await pool.kkPlanes(tableOf(kk), q.slice(8 * h), 77 + h + 1, m - h, 16, 2);
    assert.notDeepEqual(shifted, whole.subarray(2 * h));
  } finally {
    await pool.close();
  }
  // a closed pool: this thread hashes it all
  assert.deepEqual(await kk.padPlanesShared(batch, 16, 2, pool), whole);
});

/** The sender's σ((C(i) ∧ s)) table (private; read for the slice test). */
const tableOf = (kk: KkSender) => (kk as unknown as { tab: Int32Array }).tab;
