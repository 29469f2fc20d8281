import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { channelPair } from '../../src/pi/transport/channel.js';
import { connectTcp, listenTcp } from '../../src/pi/node/transport/tcp.js';
import { baseOtSend, baseOtReceive, POINT_BYTES } from '../../src/pi/ot/baseot.js';
import { OtExtSender, OtExtReceiver } from '../../src/pi/ot/iknp.js';
import { RotReceiver, RotSender } from '../../src/pi/ot/ot.js';
import { reluCircuit } from '../../src/pi/gc/relu.js';
import { Garbler, evaluateRing, parseMaterial } from '../../src/pi/gc/garble.js';
import { ringToBits } from '../../src/pi/gc/ring.js';
import { rescaleRef, edgeCases, toF64 } from './helpers.js';
import { tapReceived } from './helpers/transcript.js';

const bitAt = (bits: Uint8Array, j: number) => (bits[j >>> 3] >>> (j & 7)) & 1;

function bitFraction(bytes: Uint8Array): number {
  let ones = 0;
  for (const b of bytes) for (let k = 0; k < 8; k++) ones += (b >>> k) & 1;
  return ones / (8 * bytes.length);
}

test('base OT: the receiver gets exactly k_c', async () => {
  const [a, b] = channelPair();
  const choices = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1];
  const [{ k0, k1 }, kc] = await Promise.all([baseOtSend(a, choices.length), baseOtReceive(b, choices)]);
  choices.forEach((c, i) => {
    assert.deepEqual(kc[i], c ? k1[i] : k0[i]);
    assert.notDeepEqual(kc[i], c ? k0[i] : k1[i]);
  });
  // A malformed point from the receiver is named.
  const [x, y] = channelPair();
  const p = baseOtSend(x, 1);
  await y.recv();
  y.send(new Uint8Array(POINT_BYTES).fill(4));
  await assert.rejects(p, /receiver point 0 is not a valid P-256 point/);
});

test('IKNP: correlated OT, and chosen-message and random OT on it; the sender sees only masked choices', async () => {
  const [s, r] = channelPair();
  const seenBySender = tapReceived(s);
  const delta = new Uint8Array(randomBytes(16));
  delta[0] |= 1;
  const [cotS, cotR] = await Promise.all([OtExtSender.setup(s, { delta }), OtExtReceiver.setup(r)]);
  // IKNP is the correlated OT; random and chosen-message OT are hashed on top of it (ot/ot.ts).
  const S = new RotSender(s, cotS),
    R = new RotReceiver(r, cotR);
  assert.deepEqual(S.delta, delta);

  for (const m of [1, 1000, 50_000]) {
    const c = new Uint8Array(randomBytes(Math.ceil(m / 8)));
    const [k0, got] = await Promise.all([S.sendCot(m), R.recvCot(c, m)]);
    assert.equal(got.length, 16 * m);
    for (let j = 0; j < m; j++) {
      for (let q = 0; q < 16; q++) assert.equal(got[16 * j + q], k0[16 * j + q] ^ (bitAt(c, j) ? delta[q] : 0));
    }
    const m0 = new Uint8Array(randomBytes(16 * m)),
      m1 = new Uint8Array(randomBytes(16 * m));
    const [, mc] = await Promise.all([S.sendChosen(m0, m1), R.receiveChosen(c, m)]);
    for (let j = 0; j < m; j++) {
      assert.deepEqual(mc.subarray(16 * j, 16 * j + 16), (bitAt(c, j) ? m1 : m0).subarray(16 * j, 16 * j + 16));
    }
    const [pair, rc] = await Promise.all([S.sendRandom(m), R.receiveRandom(c, m)]);
    for (let j = 0; j < m; j++) {
      assert.deepEqual(
        rc.subarray(16 * j, 16 * j + 16),
        (bitAt(c, j) ? pair.m1 : pair.m0).subarray(16 * j, 16 * j + 16),
      );
      assert.notDeepEqual(pair.m0.subarray(16 * j, 16 * j + 16), pair.m1.subarray(16 * j, 16 * j + 16));
    }
  }

  // The sender's view for all-zero and all-one choices: both look uniform, and are unrelated.
  const m = 8192;
  const views: Uint8Array[] = [];
  for (const fill of [0, 255]) {
    const before = seenBySender.length;
    await Promise.all([S.sendCot(m), R.recvCot(new Uint8Array(m / 8).fill(fill), m)]);
    assert.equal(seenBySender.length, before + 1);
    views.push(seenBySender[before]);
  }
  const [u0, u1] = views;
  assert.equal(u0.length, 16 * m);
  for (const u of [u0, u1]) assert.ok(Math.abs(bitFraction(u) - 0.5) < 0.003, `ones fraction ${bitFraction(u)}`);
  assert.ok(Math.abs(bitFraction(u0.map((x, i) => x ^ u1[i])) - 0.5) < 0.003);

  await assert.rejects(R.recvCot(new Uint8Array(1), 100), /1 bytes of choice bits for m=100/);
  await assert.rejects(S.sendChosen(new Uint8Array(16), new Uint8Array(32)), /must be equal multiples of 16/);
});

test('end to end over TCP: client labels by correlated OT, garbled ReLUs, client decodes its share', async () => {
  const k = 32,
    f = 10,
    circ = reluCircuit({ k, f });
  const { a, b, r } = edgeCases(k, f, 3000);
  const n = a.length;
  let finish!: (v: { sent: number; recv: number }) => void, fail!: (e: Error) => void;
  const done = new Promise<{ sent: number; recv: number }>((res, rej) => {
    finish = res;
    fail = rej;
  });
  const l = await listenTcp({ port: 0, host: '127.0.0.1', onError: (e) => fail(e) }, async (ch) => {
    // Server (garbler): offline: OT, garble, send tables and its mask labels; online: its share labels.
    const g = new Garbler();
    const ot = await OtExtSender.setup(ch, { delta: g.delta });
    const zeroB = await ot.sendCot(k * n);
    const batch = g.garble(circ, n, { b: zeroB });
    ch.sendParts([batch.material.bytes, g.encode(batch, 'r', toF64(r))]);
    ch.send(g.encode(batch, 'a', toF64(a)));
    await ch.recvBytes('done');
    const st = ch.stats();
    finish({ sent: st.bytesSent, recv: st.bytesRecv });
  });
  const ch = await connectTcp('127.0.0.1', l.port);
  // Client (evaluator).
  const ot = await OtExtReceiver.setup(ch);
  const labelsB = await ot.recvCot(ringToBits(toF64(b), k), k * n);
  const [mat, labelsR] = await ch.recvParts('garbled ReLUs', 2);
  const material = parseMaterial(circ, mat);
  const labelsA = await ch.recvBytes('server share labels', k * n * 16);
  const z = evaluateRing(circ, material, { a: labelsA, r: labelsR, b: labelsB });
  ch.send(new Uint8Array(1));
  const server = await done;
  ch.close();
  await l.close();
  for (let i = 0; i < n; i++) assert.equal(BigInt(z[i]), rescaleRef('relu', k, f, a[i], b[i], r[i]));
  // Server-bound traffic: the base-OT point A, then 16 bytes per client input bit (OT matrix, padded to 128).
  assert.equal(server.recv, POINT_BYTES + 16 * Math.ceil((k * n) / 128) * 128 + 1);
  assert.ok(server.sent < n * (32 * circ.numAnd + 2 * k * 16 + 8) + 10_000);
});
