import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../../../src/models/index.js';
import { manualSeed } from '../../../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../../../src/pi/node/compile.js';
import { runClient, serveClient } from '../../../../src/pi/protocol.js';
import { servePi } from '../../../../src/pi/node/serve.js';
import { channelPair, type Channel } from '../../../../src/pi/transport/channel.js';
import { connectChannel } from '../../../../src/pi/node/transport/tcp.js';
import { PeerError, type PiError } from '../../../../src/pi/wire.js';
import { identity, pinned, serverSecurity } from '../../helpers/tls.js';
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

test('malformed public keys and uploads over TLS: the server names the message, tells the client MALFORMED, and keeps serving', async () => {
  const errors: string[] = [];
  const S = await identity('server');
  const l = await servePi(model, {
    port: 0,
    host: '127.0.0.1',
    security: serverSecurity(S),
    onError: (e) => errors.push(e.message),
  });
  try {
    // wrong size, a coefficient at or above its modulus, the wrong parameter set (more cases: serialize.test.ts)
    const cases: [number, (d: Uint8Array) => Uint8Array, RegExp][] = [
      [1, (d) => d.subarray(0, d.length - 100), /he public key: \d+ bytes, expected \d+ for 1 ciphertext/],
      [
        1,
        (d) => {
          d[32] = d[33] = d[34] = 0xff;
          d[35] |= 0x3f;
          return d;
        },
        /he public key: coefficient 0 of prime 0 is 1073741823, not below the modulus 1073692673/,
      ],
      [
        2,
        (d) => {
          d[0] ^= 1;
          return d;
        },
        /he upload for conv1: parameter set 48450002, expected 48450003/,
      ],
    ];
    for (const [k, [kind, edit, re]] of cases.entries()) {
      const ch = await connectChannel('127.0.0.1', l.port, pinned(S));
      tamper(ch, kind, edit);
      // the client hears the code and its generic text only, never the server's details
      await assert.rejects(runClient(ch, image(1)), (e: PiError) => {
        assert.ok(e instanceof PeerError && e.code === 'MALFORMED', e.message);
        assert.match(e.message, /the server reported MALFORMED \(malformed message\)/);
        assert.doesNotMatch(e.message, re);
        return true;
      });
      for (let i = 0; i < 100 && errors.length < k + 1; i++) await new Promise((r) => setTimeout(r, 10));
      // the server's own log names the message and the fault
      assert.match(errors[k]!, /malformed message: /);
      assert.match(errors[k]!, re);
    }
    assert.equal(errors.length, cases.length);
    // the server still serves: a clean query gives the reference logits, within the HE linear layers' error (a carry
    // of +-1 per output before truncation, docs/pi-he.md; amplified by the later layers, as for local truncation)
    const x = image(2);
    const r = await runClient(await connectChannel('127.0.0.1', l.port, pinned(S)), x, { relu: 'gc' });
    const ref = r64ToBig(referenceForward(model, quantize(x, model.plan.fixed.f)).out),
      out = r64ToBig(r.out);
    const d = Math.max(...Array.from(out, (v, i) => Number(v > ref[i]! ? v - ref[i]! : ref[i]! - v)));
    assert.ok(d < 2 ** (model.plan.ops[model.plan.ops.length - 1]!.scale - 8), `max diff ${d} ULPs of the logits`);
  } finally {
    await l.close();
  }
});

test('a malformed response is refused by the client, naming it; the server hears of it', async () => {
  for (const [edit, re] of [
    [(d: Uint8Array) => d.subarray(0, d.length - 1), /he responses for conv1: \d+ bytes, expected \d+/],
    [
      (d: Uint8Array) => {
        d[12] = 99;
        return d;
      },
      /he responses for conv1: 99 ciphertexts, expected 1\.\.\d+/,
    ],
  ] as const) {
    const [s, c] = channelPair();
    tamper(s, 3, edit);
    const [rs, rc] = await Promise.allSettled([serveClient(s, model), runClient(c, image(3))]);
    assert.equal(rc.status, 'rejected');
    const err = (rc as PromiseRejectedResult).reason as PiError;
    assert.equal(err.code, 'MALFORMED');
    assert.match(err.message, /malformed message: /);
    assert.match(err.message, re);
    assert.equal(rs.status, 'rejected');
    // (while it waited for the client's next message, or, if it was sending, from the error frame queued for it)
    assert.match(
      (rs as PromiseRejectedResult).reason.message,
      /the client reported MALFORMED \(malformed message\) (while we waited for|\(here: )/,
    );
  }
});
