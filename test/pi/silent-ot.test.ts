// The silent COT (ot/ferret.ts) on small LPN parameters (the real ones: silent-params.test.ts): the MPCOT against
// plaintext, a round's correlation y = z ⊕ x·Δ and its x = e ⊕ u·A, the extension end to end (IKNP bootstrap, several
// rounds, chosen choices), the 1-out-of-N OT on it (ot/nco.ts), and mutations (a fixed noise, a wrong punctured
// index, a broken correlation) that the checks here catch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelPair } from '../../src/pi/transport/channel.js';
import { i32 } from '../../src/pi/bits.js';
import { seededRandom, systemRandom } from '../../src/pi/random.js';
import {
  type FerretReceiver,
  type FerretSender,
  ggmLevel,
  ggmLevelJs,
  mpcotRecv,
  mpcotSend,
  roundRecv,
  roundSend,
  silentCot,
  type SilentParams,
} from '../../src/pi/ot/ferret.js';
import {
  baseCount,
  lpnCode,
  lpnEncodeBlocks,
  lpnEncodeBlocksJs,
  roundMessageBytes,
  type LpnParams,
} from '../../src/pi/ot/lpn.js';
import { RotReceiver, RotSender } from '../../src/pi/ot/ot.js';
import { ncoReceivePads, ncoSendPlanes } from '../../src/pi/ot/nco.js';

const SMALL: LpnParams = { name: 'test small', n: 4096, k: 512, t: 32, h: 7, d: 10 };
const BOOT: LpnParams = { name: 'test boot', n: 1024, k: 128, t: 16, h: 6, d: 10 };
const PARAMS: SilentParams = { boot: [BOOT], main: SMALL };

/** Plain base COTs: sender keys q, receiver choices r (bytes 0/1) and keys y = q ⊕ r·Δ. */
function plainBase(m: number, delta: Int32Array, rand = systemRandom) {
  const q = i32(rand.bytes(16 * m)),
    r = Uint8Array.from(rand.bytes(m), (b) => b & 1),
    y = q.slice();
  for (let j = 0; j < m; j++) if (r[j]) for (let w = 0; w < 4; w++) y[4 * j + w] ^= delta[w]!;
  return { q, r, y };
}

/** Outputs j where y_j ≠ z_j ⊕ x_j·Δ (the COT correlation). */
function violations(z: Int32Array, y: Int32Array, x: Uint8Array, delta: Int32Array): number[] {
  const bad: number[] = [];
  for (let j = 0; j < x.length; j++)
    for (let w = 0; w < 4; w++)
      if ((y[4 * j + w]! ^ z[4 * j + w]! ^ (x[j] ? delta[w]! : 0)) !== 0) {
        bad.push(j);
        break;
      }
  return bad;
}

/**
 * The punctured indices look uniform: over all trees, each of the h path bits is set in a fraction near 1/2 (6 sigma),
 * and no index repeats more than a random draw would allow (< 6 of t in 2^h).
 */
function noiseLooksRandom(alpha: Int32Array, h: number): string | null {
  const t = alpha.length,
    tol = 6 * Math.sqrt(t / 4);
  for (let b = 0; b < h; b++) {
    let ones = 0;
    for (const a of alpha) ones += (a >>> b) & 1;
    if (Math.abs(ones - t / 2) > tol) return `path bit ${b} set in ${ones} of ${t} trees`;
  }
  const counts = new Map<number, number>();
  for (const a of alpha) counts.set(a, (counts.get(a) ?? 0) + 1);
  const most = Math.max(...counts.values());
  return most >= 6 ? `a punctured index repeats ${most} times in ${t} trees` : null;
}

test('MPCOT (t GGM single-point COTs) against plaintext: leaves equal except Δ at the punctured index, set by the base choices', () => {
  const p = SMALL,
    delta = i32(systemRandom.bytes(16)),
    { q, r, y } = plainBase(p.t * p.h, delta);
  const seeds = i32(systemRandom.bytes(16 * p.t));
  const s = mpcotSend(p, seeds, delta, q, 3);
  assert.equal(s.msg.byteLength, roundMessageBytes(p));
  const w = mpcotRecv(p, s.msg, y, r, 3);
  const per = 1 << p.h;
  for (let j = 0; j < p.t; j++) {
    let expect = 0; // α_l = 1 ⊕ r_l, most significant level first
    for (let l = 0; l < p.h; l++) expect = 2 * expect + (1 - r[j * p.h + l]!);
    assert.equal(w.alpha[j], expect, `tree ${j}: punctured index`);
  }
  const e = new Uint8Array(p.n);
  for (let j = 0; j < p.t; j++) e[j * per + w.alpha[j]!] = 1;
  assert.deepEqual(violations(s.leaves, w.leaves, e, delta), []);
  // the leaves are the GGM expansion of the seeds (one tree recomputed in plaintext from its seed)
  let level = seeds.slice(0, 4);
  for (let l = 1; l <= p.h; l++) {
    const next = new Int32Array(4 << l);
    ggmLevel(level, 1 << (l - 1), next);
    level = next;
  }
  assert.deepEqual(level, s.leaves.subarray(0, 4 * per));
  assert.equal(noiseLooksRandom(w.alpha, p.h), null);

  // Mutations the checks above catch: a wrong round (tweak) or a flipped base choice breaks the correlation; fixed
  // base choices (a fixed noise) fail the randomness check.
  const wrongRound = mpcotRecv(p, s.msg, y, r, 4);
  assert.ok(violations(s.leaves, wrongRound.leaves, e, delta).length > 0, 'a wrong tweak must break the correlation');
  const r2 = r.slice();
  r2[5] ^= 1; // the receiver believes another path in tree 0
  const wrongPath = mpcotRecv(p, s.msg, y, r2, 3);
  assert.ok(violations(s.leaves, wrongPath.leaves, e, delta).length > 0, 'a wrong punctured index must be caught');
  const fixed = mpcotRecv(p, s.msg, y, new Uint8Array(r.length), 3);
  assert.match(noiseLooksRandom(fixed.alpha, p.h) ?? '', /path bit|repeats/, 'a fixed noise must be caught');
});

test('one round: y = z ⊕ x·Δ for every output, x = e ⊕ u·A in plaintext, the noise regular', () => {
  const p = SMALL,
    delta = i32(systemRandom.bytes(16)),
    m = baseCount(p),
    { q, r, y } = plainBase(m, delta);
  const s = roundSend(p, q, delta, systemRandom, 0);
  const v = roundRecv(p, y, r, s.msg, 0);
  assert.deepEqual(violations(s.z, v.y, v.x, delta), []);
  // x = e ⊕ u·A: e has exactly one 1 per block, at the tree's punctured index
  const code = lpnCode(p),
    th = p.t * p.h,
    per = 1 << p.h;
  const e = new Uint8Array(p.n);
  for (let i = 0; i < p.n; i++) {
    let ua = 0;
    for (let l = 0; l < p.d; l++) ua ^= r[th + code[i * p.d + l]!]!;
    e[i] = v.x[i]! ^ ua;
  }
  for (let j = 0; j < p.t; j++) {
    const ones = e.subarray(j * per, (j + 1) * per).reduce((a, b) => a + b, 0);
    assert.equal(ones, 1, `block ${j}: noise weight`);
  }
  // x is balanced (u·A over d = 10 random secret bits)
  const ones = v.x.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(ones - p.n / 2) < 6 * Math.sqrt(p.n / 4), `${ones} of ${p.n} choice bits set`);
  // a broken correlation is caught: one flipped key bit, or one flipped choice bit
  const z2 = s.z.slice();
  z2[4 * 77 + 2] ^= 1 << 9;
  assert.deepEqual(violations(z2, v.y, v.x, delta), [77]);
  const x2 = v.x.slice();
  x2[100] ^= 1;
  assert.deepEqual(violations(s.z, v.y, x2, delta), [100]);
});

test('the silent COT end to end: IKNP bootstrap, several rounds, chosen choices; the receiver sends only its choice corrections', async () => {
  const [sc, rc] = channelPair();
  const ext = silentCot(PARAMS);
  const [S, R] = await Promise.all([
    ext.sender(sc, { random: seededRandom('silent S') }),
    ext.receiver(rc, { random: seededRandom('silent R') }),
  ]);
  const fs = S as FerretSender,
    fr = R as FerretReceiver;
  assert.equal(fs.rounds, 1, 'the bootstrap round');
  const delta = S.delta;
  sc.resetStats();
  rc.resetStats();
  let total = 0;
  for (const m of [1, 100, 3000, 5000, 777]) {
    const c = systemRandom.bytes((m + 7) >>> 3);
    const [k0, k] = await Promise.all([S.sendCot(m), R.recvCot(c, m)]);
    assert.equal(k0.length, 16 * m);
    for (let j = 0; j < m; j++) {
      const cj = (c[j >>> 3]! >>> (j & 7)) & 1;
      for (let b = 0; b < 16; b++)
        assert.equal(k[16 * j + b], k0[16 * j + b]! ^ (cj ? delta[b]! : 0), `COT ${j} of a batch of ${m}`);
    }
    total += m;
  }
  assert.ok(fs.rounds >= 3 && fs.rounds === fr.rounds, `rounds: sender ${fs.rounds}, receiver ${fr.rounds}`);

  const rounds = fs.rounds - 1;
  assert.equal(sc.stats().bytesSent, rounds * roundMessageBytes(SMALL), 'the sender sends its rounds, nothing else');
  const corrections = [1, 100, 3000, 5000, 777].reduce((a, m) => a + ((m + 7) >>> 3), 0);
  assert.equal(rc.stats().bytesSent, corrections, `the receiver sends 1 bit per COT (${total} COTs)`);
  sc.close();
});

/** The random choice bits x of mx COTs after `skip` others (a few rounds), read as the corrections for choices 0. */
async function randomChoices(mx: number, skip: number): Promise<Uint8Array> {
  const [sc, rc] = channelPair();
  const ext = silentCot(PARAMS);
  const [S, R] = await Promise.all([ext.sender(sc, {}), ext.receiver(rc, {})]);
  await Promise.all([S.sendCot(skip), R.recvCot(new Uint8Array(skip / 8), skip)]);
  const sent: Uint8Array[] = [],
    send = rc.send.bind(rc);
  rc.send = (d: Uint8Array) => {
    sent.push(d.slice());
    send(d);
  };
  await Promise.all([S.sendCot(mx), R.recvCot(new Uint8Array(mx / 8), mx)]);
  sc.close();
  return sent[0]!;
}

test("the COTs' random choice bits x = e ⊕ u·A: balanced, and unrelated between two sessions (a fixed noise and secret is caught)", async () => {
  // A fixed noise and secret (e.g. the bootstrap's choices fixed) keep every correlation right, and after a few rounds
  // x is balanced again, but it is the same in every session: the sender could compute it.
  const mx = 8000,
    skip = 12_000;
  const [x1, x2] = [await randomChoices(mx, skip), await randomChoices(mx, skip)];
  const tol = 6 * Math.sqrt(mx / 4);
  let ones = 0,
    agree = 0;
  for (let j = 0; j < mx; j++) {
    const a = (x1[j >>> 3]! >>> (j & 7)) & 1,
      b = (x2[j >>> 3]! >>> (j & 7)) & 1;
    ones += a;
    agree += a === b ? 1 : 0;
  }
  assert.ok(Math.abs(ones - mx / 2) < tol, `${ones} of ${mx} random choice bits set`);
  assert.ok(Math.abs(agree - mx / 2) < tol, `two sessions agree on ${agree} of ${mx} random choice bits`);
});

test('reserve, then both directions send before they receive (the ReLU offline pattern) without deadlock', async () => {
  const [a, b] = channelPair();
  const ext = silentCot(PARAMS);
  // A: a sends; B: b sends (bootstrap B after A, as the silent session does)
  const [SA, RA] = await Promise.all([ext.sender(a, {}), ext.receiver(b, {})]);
  const [RB, SB] = await Promise.all([ext.receiver(a, {}), ext.sender(b, {})]);
  const need = 20000; // several rounds of SMALL
  await Promise.all([
    (async () => {
      await (SA as FerretSender).reserve(need);
      await (RB as FerretReceiver).reserve(need);
    })(),
    (async () => {
      await (RA as FerretReceiver).reserve(need);
      await (SB as FerretSender).reserve(need);
    })(),
  ]);
  const c1 = systemRandom.bytes(need / 8),
    c2 = systemRandom.bytes(need / 8);
  // each side: receive-side call first (sends its corrections), then the send side
  const [x, y] = await Promise.all([
    (async () => {
      const kB = RB.recvCot(c1, need);
      return { kA0: await SA.sendCot(need), kB: await kB };
    })(),
    (async () => {
      const kA = RA.recvCot(c2, need);
      return { kB0: await SB.sendCot(need), kA: await kA };
    })(),
  ]);
  for (let j = 0; j < need; j += 997) {
    const c2j = (c2[j >>> 3]! >>> (j & 7)) & 1,
      c1j = (c1[j >>> 3]! >>> (j & 7)) & 1;
    for (let q = 0; q < 16; q++) {
      assert.equal(y.kA[16 * j + q], x.kA0[16 * j + q]! ^ (c2j ? SA.delta[q]! : 0));
      assert.equal(x.kB[16 * j + q], y.kB0[16 * j + q]! ^ (c1j ? SB.delta[q]! : 0));
    }
  }
  a.close();
});

test('1-out-of-16 OT from 4 silent COTs (nco.ts): the receiver gets its pad bits, the other pads are balanced', async () => {
  const [sc, rc] = channelPair();
  const ext = silentCot(PARAMS);
  const [S, R] = await Promise.all([ext.sender(sc, {}), ext.receiver(rc, {})]);
  const rs = new RotSender(sc, S),
    rr = new RotReceiver(rc, R);
  const m = 2000,
    N = 16,
    planes = 2;
  const choices = Uint8Array.from(systemRandom.bytes(m), (b) => b % N);
  const [pl, pads] = await Promise.all([ncoSendPlanes(rs, m, N, planes), ncoReceivePads(rr, choices, m, N, planes)]);
  let ones = 0;
  for (let j = 0; j < m; j++) {
    for (let p = 0; p < planes; p++) {
      const w = pl[j * planes + p]!;
      assert.equal((pads[j]! >>> p) & 1, (w >>> choices[j]!) & 1, `OT ${j}, plane ${p}`);
      assert.equal(w >>> N, 0, 'no bits above N');
      for (let i = 0; i < N; i++) ones += (w >>> i) & 1;
    }
  }
  const bits = m * planes * N;
  assert.ok(Math.abs(ones - bits / 2) < 6 * Math.sqrt(bits / 4), `${ones} of ${bits} pad bits set`);
  sc.close();
});

test('the GGM level kernels (WebAssembly SIMD around AES) equal the plain JS level, across slices', () => {
  for (const count of [1, 5, 8192, 8193, 20_000]) {
    const parents = i32(systemRandom.bytes(16 * count)),
      a = new Int32Array(8 * count),
      b = new Int32Array(8 * count);
    ggmLevel(parents, count, a);
    ggmLevelJs(parents, count, b);
    assert.deepEqual(a, b, `${count} parents`);
  }
});

test('the LPN encoding kernel (WebAssembly SIMD) equals the plain JS one, across slices and two codes', () => {
  for (const p of [SMALL, BOOT, { ...SMALL, name: 'test wide', n: 70_000, t: 70_000 >>> 7 }]) {
    const code = lpnCode(p),
      base = i32(systemRandom.bytes(16 * p.k)),
      out = i32(systemRandom.bytes(16 * p.n)),
      ref = out.slice();
    lpnEncodeBlocks(code, p.d, base, out, p.n);
    lpnEncodeBlocksJs(code, p.d, base, ref, p.n);
    assert.deepEqual(out, ref, p.name);
  }
});
