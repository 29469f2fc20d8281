// The OT interface (ot/ot.ts) as a plug point: the OT session, KK13 and the millionaires' protocol on an ideal COT
// (test/pi/helpers/idealcot.ts) instead of IKNP, checked against plaintext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelPair } from '../../src/pi/transport/channel.js';
import { otSession } from '../../src/pi/ot/session.js';
import { RotReceiver, RotSender } from '../../src/pi/ot/ot.js';
import { systemRandom } from '../../src/pi/random.js';
import {
  compare,
  compareShape,
  millionaireOfflineClient,
  millionaireOfflineServer,
} from '../../src/pi/millionaire/millionaire.js';
import { getBit } from '../../src/pi/bits.js';
import { r64FromBig } from '../../src/pi/fixed.js';
import { idealCot } from './helpers/idealcot.js';
import { randBig } from './helpers.js';

const bitAt = (bits: Uint8Array, j: number) => (bits[j >>> 3]! >>> (j & 7)) & 1;

test('ideal COT: K0 ⊕ c·Δ, and random / chosen OT hashed on it', async () => {
  const [s, r] = channelPair();
  const ideal = idealCot();
  const delta = systemRandom.bytes(16);
  const S = new RotSender(s, await ideal.server.sender(s, { delta })),
    R = new RotReceiver(r, await ideal.client.receiver(r, {}));
  const m = 1000,
    c = systemRandom.bytes(m / 8);
  const [k0, k] = await Promise.all([S.sendCot(m), R.recvCot(c, m)]);
  for (let j = 0; j < m; j++)
    for (let q = 0; q < 16; q++) assert.equal(k[16 * j + q], k0[16 * j + q]! ^ (bitAt(c, j) ? delta[q]! : 0));
  const m0 = systemRandom.bytes(16 * m),
    m1 = systemRandom.bytes(16 * m);
  const [, mc] = await Promise.all([S.sendChosen(m0, m1), R.receiveChosen(c, m)]);
  for (let j = 0; j < m; j++)
    assert.deepEqual(mc.subarray(16 * j, 16 * j + 16), (bitAt(c, j) ? m1 : m0).subarray(16 * j, 16 * j + 16));
  assert.equal(s.stats().bytesSent + r.stats().bytesSent, 32 * m, 'only the chosen-OT reply crosses the channel');
});

test("an OT session on the ideal COT: no base OT or IKNP message; KK13 and the millionaires' protocol match plaintext", async () => {
  const [sCh, cCh] = channelPair();
  const ideal = idealCot();
  const [S, C] = await Promise.all([
    otSession(sCh, 'server', systemRandom, null, ideal.server),
    otSession(cCh, 'client', systemRandom, null, ideal.client),
  ]);
  assert.equal(
    sCh.stats().bytesSent + cCh.stats().bytesSent,
    0,
    'the set-up sends nothing: its base OTs and KK13 seeds came from the ideal COT',
  );

  // KK13 (seeded by the session's random OTs), 1-out-of-16 chosen OT of 2-byte messages.
  const m = 500,
    N = 16,
    bytes = 2;
  const msgs = systemRandom.bytes(m * N * bytes),
    choices = Uint8Array.from(systemRandom.bytes(m), (b) => b % N);
  const [, got] = await Promise.all([
    S.kkSender!.sendChosen(msgs, m, N, bytes),
    C.kkReceiver!.receiveChosen(choices, m, N, bytes),
  ]);
  for (let j = 0; j < m; j++)
    assert.deepEqual(
      got.subarray(j * bytes, (j + 1) * bytes),
      msgs.subarray((j * N + choices[j]!) * bytes, (j * N + choices[j]! + 1) * bytes),
    );

  // The millionaires' protocol: XOR shares of [x > y].
  for (const bits of [32, 13]) {
    const shape = compareShape(bits, 4),
      n = 300;
    const x = Array.from({ length: n }, () => randBig(bits)),
      y = x.map((v, i) => (i % 4 === 0 ? v : i % 4 === 1 ? v ^ 1n : randBig(bits)));
    const [sc, cc] = await Promise.all([
      millionaireOfflineServer(S, shape, n),
      millionaireOfflineClient(C, shape, r64FromBig(y)),
    ]);
    const [zs, zc] = await Promise.all([
      compare(sCh, 'server', shape, sc, r64FromBig(x), 'test'),
      compare(cCh, 'client', shape, cc, r64FromBig(y), 'test'),
    ]);
    for (let i = 0; i < n; i++)
      assert.equal(getBit(zs, i) ^ getBit(zc, i), x[i]! > y[i]! ? 1 : 0, `bits=${bits}: x=${x[i]} y=${y[i]}`);
  }
});
