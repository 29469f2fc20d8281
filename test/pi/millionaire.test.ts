import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelPair } from '../../src/pi/transport/channel.js';
import { otSession } from '../../src/pi/ot/session.js';
import { systemRandom } from '../../src/pi/random.js';
import {
  compare,
  compareShape,
  lastSender,
  millionaireOfflineClient,
  millionaireOfflineServer,
} from '../../src/pi/millionaire/millionaire.js';
import { getBit } from '../../src/pi/bits.js';
import { r64FromBig } from '../../src/pi/fixed.js';
import { randBig } from './helpers.js';

const [sCh, cCh] = channelPair();
const sessions = Promise.all([otSession(sCh, 'server', systemRandom), otSession(cCh, 'client', systemRandom)]);

/** Edge pairs for `bits`-bit values: equal, 0, the largest, neighbours, equal high digits; then random pairs. */
function cases(bits: number, nRandom: number): { x: bigint[]; y: bigint[] } {
  const max = (1n << BigInt(bits)) - 1n,
    x: bigint[] = [],
    y: bigint[] = [];
  const add = (a: bigint, b: bigint) => {
    if (a >= 0n && a <= max && b >= 0n && b <= max) {
      x.push(a);
      y.push(b);
    }
  };
  const r = randBig(bits);
  for (const [a, b] of [
    [0n, 0n],
    [max, max],
    [0n, max],
    [max, 0n],
    [r, r],
    [r, r + 1n],
    [r + 1n, r],
    [1n, 0n],
    [0n, 1n],
    [max - 1n, max],
    [max, max - 1n],
  ] as const)
    add(a, b);
  // Same value except one low bit / one digit: only the least significant leaf decides.
  for (let k = 0; k < Math.min(bits, 8); k++) {
    add(r | (1n << BigInt(k)), r & ~(1n << BigInt(k)));
    add(r & ~(1n << BigInt(k)), r | (1n << BigInt(k)));
  }
  for (let i = 0; i < nRandom; i++) {
    const a = randBig(bits);
    add(a, i % 3 === 0 ? a ^ 1n : randBig(bits));
  }
  return { x, y };
}

async function run(bits: number, digit: number, nRandom: number) {
  const [S, C] = await sessions;
  const shape = compareShape(bits, digit);
  const { x, y } = cases(bits, nRandom);
  const n = x.length;
  const [sc, cc] = await Promise.all([
    millionaireOfflineServer(S, shape, n),
    millionaireOfflineClient(C, shape, r64FromBig(y)),
  ]);
  sCh.resetStats();
  cCh.resetStats();
  const [zs, zc] = await Promise.all([
    compare(sCh, 'server', shape, sc, r64FromBig(x), 'test'),
    compare(cCh, 'client', shape, cc, r64FromBig(y), 'test'),
  ]);
  for (let i = 0; i < n; i++)
    assert.equal(
      getBit(zs, i) ^ getBit(zc, i),
      x[i]! > y[i]! ? 1 : 0,
      `bits=${bits} digit=${digit}: x=${x[i]} y=${y[i]}`,
    );
  const st = sCh.stats(),
    ct = cCh.stats();
  return {
    shape,
    n,
    server: { sent: st.bytesSent, rounds: st.rounds },
    client: { sent: ct.bytesSent, rounds: ct.rounds },
  };
}

test('compare shape: radix 16 on 32 bits has 8 leaves, 3 levels, 4 correlated pairs and 3 single triples', () => {
  const s = compareShape(32, 4);
  assert.equal(s.leaves, 8);
  assert.equal(s.levels.length, 3);
  assert.equal(s.units, 7);
  assert.equal(s.levels.flatMap((l) => l.combines).filter((c) => c.eq).length, 4);
  assert.deepEqual(s.leafEq, [false, true, true, true, true, true, true, true]);
  assert.equal(lastSender(s), 'client');
  assert.equal(compareShape(4, 4).levels.length, 0);
  assert.equal(compareShape(13, 3).leaves, 5); // odd counts pass the top node through
  assert.throws(() => compareShape(64, 4), /must be an integer in \[1, 63\]/);
  assert.throws(() => compareShape(32, 5), /digit of 5 bits/);
});

test('[x > y] as XOR shares for edge and random values, several widths and digit sizes', async () => {
  for (const [bits, digit] of [
    [32, 4],
    [1, 4],
    [4, 4],
    [5, 4],
    [13, 3],
    [8, 1],
    [17, 2],
    [44, 4],
    [63, 4],
  ] as const)
    await run(bits, digit, 300);
});

test('online cost of a 32-bit radix-16 comparison: Λ + 1 = 4 alternating flights, 30 B of leaf tables per element', async () => {
  const { n, server, client } = await run(32, 4, 4000);
  const W = Math.ceil(n / 32);
  // Server: F1 tables (15 tables of 16 bits) + its level-1 openings (3 pairs x 3 + 1 single x 2 vectors), F3 its
  // level-2 (1 x 3 + 1 x 2) and level-3 (2) openings.
  assert.equal(server.sent, 15 * Math.ceil((16 * n) / 32) * 4 + (11 + 5 + 2) * W * 4);
  assert.equal(client.sent, (11 + 5 + 2) * W * 4);
  assert.equal(server.rounds, 4);
  assert.equal(client.rounds, 4);
});

test('a truncated comparison flight is named', async () => {
  const [S, C] = await sessions;
  const shape = compareShape(32, 4),
    n = 50,
    y = r64FromBig(Array.from({ length: n }, () => randBig(32)));
  const [sc, cc] = await Promise.all([millionaireOfflineServer(S, shape, n), millionaireOfflineClient(C, shape, y)]);
  const send = sCh.send.bind(sCh);
  sCh.send = (d: Uint8Array) => {
    sCh.send = send;
    send(d.subarray(0, d.byteLength - 4));
  };
  const pc = compare(cCh, 'client', shape, cc, y, 'online: s1');
  void compare(sCh, 'server', shape, sc, y, 'online: s1').catch(() => {});
  await assert.rejects(pc, /malformed message: online: s1: comparison flight 1: expected \d+ bytes/);
  sCh.close();
});

test("the client's level-1 openings, XORed with the server's own leaf shares, are uncorrelated with the leaves' comparisons", async () => {
  // The server knows its leaf shares gt0, eq0; the client opens eq_hi ⊕ a1 and gt_lo ⊕ b1 (its triple shares, from
  // random OT choices and pads). Without those pads the server would read [x_j = y_j] and [x_j > y_j] of every digit.
  const [sCh, cCh] = channelPair(); // its own session: the test above leaves the shared one broken
  const [S, C] = await Promise.all([otSession(sCh, 'server', systemRandom), otSession(cCh, 'client', systemRandom)]);
  const shape = compareShape(32, 4),
    n = 4096,
    W = Math.ceil(n / 32);
  const xs = Array.from({ length: n }, () => randBig(32)),
    ys = xs.map((v, i) => (i % 2 ? v : randBig(32))); // half equal: eq is often 1
  const [sc, cc] = await Promise.all([
    millionaireOfflineServer(S, shape, n),
    millionaireOfflineClient(C, shape, r64FromBig(ys)),
  ]);
  const recv = sCh.recv.bind(sCh),
    got: Uint8Array[] = [];
  sCh.recv = async () => {
    const m = await recv();
    got.push(m.slice());
    return m;
  };
  await Promise.all([
    compare(sCh, 'server', shape, sc, r64FromBig(xs), 'test'),
    compare(cCh, 'client', shape, cc, r64FromBig(ys), 'test'),
  ]);
  const open = new Uint32Array(got[0]!.slice().buffer); // flight 2: the client's level-1 openings first
  const digit = (v: bigint, j: number) => Number((v >> BigInt(4 * j)) & 15n);
  let o = 0,
    worst = 0;
  const check = (words: Uint32Array, share: Uint32Array, truth: (i: number) => number) => {
    let agree = 0;
    for (let i = 0; i < n; i++) agree += (((words[i >>> 5]! ^ share[i >>> 5]!) >>> (i & 31)) & 1) === truth(i) ? 1 : 0;
    worst = Math.max(worst, Math.abs(agree - n / 2) / (Math.sqrt(n) / 2));
  };
  for (const c of shape.levels[0]!.combines) {
    check(open.subarray(o, o + W), sc.eq[c.hi]!, (i) => (digit(xs[i]!, c.hi) === digit(ys[i]!, c.hi) ? 1 : 0));
    check(open.subarray(o + W, o + 2 * W), sc.gt[c.lo]!, (i) => (digit(xs[i]!, c.lo) > digit(ys[i]!, c.lo) ? 1 : 0));
    o += (c.eq ? 3 : 2) * W;
  }
  assert.ok(worst < 6, `an opening agrees with the leaf comparisons ${worst.toFixed(1)} sigma away from one half`);
});
