import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../../../src/models/index.js';
import { manualSeed } from '../../../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../../../src/pi/plan.js';
import { runClient, serveClient, servePi } from '../../../../src/pi/protocol.js';
import { channelPair, type Channel } from '../../../../src/pi/transport/channel.js';
import { connectTcp } from '../../../../src/pi/transport/tcp.js';
import { quantize, r64ToBig } from '../../../../src/pi/fixed.js';
import { HE_PARAMS } from '../../../../src/pi/he/params.js';

manualSeed(11);
const net = buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10 })).eval();
const model = compilePlan(net);
net.dispose();
after(() => model.dispose());
const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);

/** HE message kind of a frame (0 if it is not an HE message). */
function heKind(d: Uint8Array): number {
  if (d.byteLength < 16) return 0;
  const v = new DataView(d.buffer, d.byteOffset, 16);
  return v.getUint32(0, true) === HE_PARAMS.id ? v.getUint32(4, true) : 0;
}

/** Rewrites the first outgoing HE message of `kind` on ch. */
function tamper(ch: Channel, kind: number, edit: (d: Uint8Array) => Uint8Array): void {
  const send = ch.send.bind(ch);
  let done = false;
  ch.send = (d: Uint8Array) => send(!done && heKind(d) === kind ? ((done = true), edit(d.slice())) : d);
}

test('malformed public keys and uploads over TCP: the server names the message, tells the client, and keeps serving', async () => {
  const errors: string[] = [];
  const l = await servePi(model, { port: 0, host: '127.0.0.1', onError: (e) => errors.push(e.message) });
  try {
    // wrong size, a coefficient at or above its modulus, the wrong parameter set (more cases: serialize.test.ts)
    const cases: [number, (d: Uint8Array) => Uint8Array, RegExp][] = [
      [1, (d) => d.subarray(0, d.length - 100), /he public key: \d+ bytes, expected \d+ for 1 ciphertext/],
      [1, (d) => { d[32] = d[33] = d[34] = 0xff; d[35] |= 0x3f; return d; }, /he public key: coefficient 0 of prime 0 is 1073741823, not below the modulus 1073692673/],
      [2, (d) => { d[0] ^= 1; return d; }, /he upload for conv1: parameter set 48450000, expected 48450001/],
    ];
    for (const [kind, edit, re] of cases) {
      const ch = await connectTcp('127.0.0.1', l.port);
      tamper(ch, kind, edit);
      await assert.rejects(runClient(ch, image(1)), (e: Error) => {
        assert.match(e.message, /peer reported an error/);
        assert.match(e.message, re);
        return true;
      });
      for (let i = 0; i < 100 && errors.length < cases.indexOf(cases.find((c) => c[2] === re)!) + 1; i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(errors[errors.length - 1]!, re);
    }
    assert.equal(errors.length, cases.length);
    // the server still serves: a clean query gives the reference logits bit for bit
    const x = image(2);
    const r = await runClient(await connectTcp('127.0.0.1', l.port), x);
    assert.deepEqual(r64ToBig(r.out), r64ToBig(referenceForward(model, quantize(x, model.plan.fixed.f)).out));
  } finally {
    await l.close();
  }
});

test('a malformed response is refused by the client, naming it; the server hears of it', async () => {
  for (const [edit, re] of [
    [(d: Uint8Array) => d.subarray(0, d.length - 1), /he responses for conv1: \d+ bytes, expected \d+/],
    [(d: Uint8Array) => { d[12] = 99; return d; }, /he responses for conv1: 99 ciphertexts, expected 1\.\.\d+/],
  ] as const) {
    const [s, c] = channelPair();
    tamper(s, 3, edit);
    const [rs, rc] = await Promise.allSettled([serveClient(s, model), runClient(c, image(3))]);
    assert.equal(rc.status, 'rejected');
    assert.match((rc as PromiseRejectedResult).reason.message, re);
    assert.equal(rs.status, 'rejected');
    assert.match((rs as PromiseRejectedResult).reason.message, /peer reported an error/);
  }
});

