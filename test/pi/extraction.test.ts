// The dealer weight-extraction attack, replayed. Before: a client read the dealer's weights fingerprint from an error
// frame, joined the dealer as both the server and the client of one session, sent impulses as its "mask" c, and read
// M c = (M c - s) + s, i.e. conv1's weights. Now: (1) the attack code works against a dealer that takes anyone as the
// server (the positive control), (2) over TLS it fails, with or without a certificate of the attacker's own, even
// knowing the fingerprint, and (3) no fingerprint or digest reaches a client in any error.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan } from '../../src/pi/node/compile.js';
import type { ServerModel } from '../../src/pi/plan.js';
import { r64Add, r64FromBytes, r64ToBig, r64ToBytes, type R64 } from '../../src/pi/fixed.js';
import { Dealer, DEALER_PROTOCOL, modelFingerprint, tcpDealerLink, type DealerLink } from '../../src/pi/node/dealer.js';
import { linearShapes } from '../../src/pi/linear/index.js';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { connectTls } from '../../src/pi/node/transport/tcp.js';
import { runClient } from '../../src/pi/protocol.js';
import { servePi } from '../../src/pi/node/serve.js';
import { ERROR_CODES, parseErrorFrame } from '../../src/pi/wire.js';
import type { RingLinear } from '../../src/pi/ringlinear.js';
import { identity, serverSecurity } from './helpers/tls.js';

manualSeed(13);
const m: ServerModel = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval(),
);
after(() => m.dispose());
const conv1 = linearShapes(m.plan)[0]!;
const geom = (() => {
  const o = m.plan.ops[conv1.op]!;
  if (o.op !== 'conv') throw new Error('conv1 is a conv');
  return o.geom;
})();
const [C, H, W] = geom.inShape,
  O = geom.outShape[0];
/** Impulses far enough apart that each input channel's 3x3 footprint in the output stays separate. */
const IMPULSES: [number, number][] = [
  [1, 1],
  [1, 5],
  [5, 1],
];

interface Outcome {
  weights: bigint[] | null;
  codes: string[];
  dataFrames: number;
}

/** Joins `link`'s dealer as the server and as the client of one session and tries to read M c for impulses c. */
async function attack(link: DealerLink, fingerprint: string): Promise<Outcome> {
  const session = Array.from({ length: 32 }, (_, i) => 'abcdef0123456789'[(i * 7 + Date.now()) % 16]).join('');
  const codes: string[] = [];
  let dataFrames = 0;
  const next = async (ch: Channel): Promise<Uint8Array | null> => {
    const msg = await Promise.race([ch.recv(), new Promise<null>((r) => setTimeout(() => r(null), 2000))]).catch(
      () => null,
    );
    const e = msg && parseErrorFrame(msg);
    if (e) codes.push(e.code);
    else if (msg) dataFrames++;
    return e ? null : msg;
  };
  let sv: Channel, cl: Channel;
  try {
    sv = await link('server');
    cl = await link('client');
  } catch (e) {
    codes.push(`connect: ${(e as Error).message}`);
    return { weights: null, codes, dataFrames };
  }
  sv.sendJson({ protocol: DEALER_PROTOCOL, role: 'server', session, plan: m.plan.digest, weights: fingerprint });
  cl.sendJson({ protocol: DEALER_PROTOCOL, role: 'client', session, plan: m.plan.digest });
  const c = new Float64Array(C * H * W);
  IMPULSES.forEach(([y, x], k) => {
    c[(k * H + y) * W + x] = 1;
  });
  const cr: R64 = { lo: Uint32Array.from(c), hi: new Uint32Array(c.length) };
  try {
    cl.send(r64ToBytes(cr));
  } catch {
    /* the dealer closed it already */
  }
  const [s, mcs] = [await next(sv), await next(cl)];
  sv.close();
  cl.close();
  if (!s || !mcs) return { weights: null, codes, dataFrames };
  const mc = r64ToBig(r64Add(r64FromBytes(mcs, conv1.outSize, 'M c - s'), r64FromBytes(s, conv1.outSize, 's')));
  // Output (o, y, x) of an impulse at (k, y0, x0) is W[o, k, y0 - y + 1, x0 - x + 1].
  const weights: bigint[] = [];
  for (let o = 0; o < O; o++)
    for (let k = 0; k < C; k++)
      for (let dy = 0; dy < 3; dy++)
        for (let dx = 0; dx < 3; dx++) {
          const [y0, x0] = IMPULSES[k]!;
          weights.push(mc[(o * H + (y0 + 1 - dy)) * W + (x0 + 1 - dx)]!);
        }
  return { weights, codes, dataFrames };
}

/** conv1 with recovered weights (3x3, stride 1, padding 1), in the ring, to compare with the server's layer. */
function convWith(w: bigint[], x: bigint[]): bigint[] {
  const out: bigint[] = [];
  for (let o = 0; o < O; o++)
    for (let y = 0; y < H; y++)
      for (let xx = 0; xx < W; xx++) {
        let acc = 0n;
        for (let k = 0; k < C; k++)
          for (let dy = 0; dy < 3; dy++)
            for (let dx = 0; dx < 3; dx++) {
              const iy = y + dy - 1,
                ix = xx + dx - 1;
              if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                acc += w[((o * C + k) * 3 + dy) * 3 + dx]! * x[(k * H + iy) * W + ix]!;
            }
        out.push(BigInt.asIntN(64, acc));
      }
  return out;
}

test("positive control: against a dealer that takes anyone as the server, the attack recovers all of conv1's weights", async () => {
  assert.deepEqual([geom.kernel, geom.stride, geom.padding, geom.groups], [3, 1, 1, 1], 'conv1 is a 3x3 convolution');
  const d = new Dealer(m, { onError: () => {} });
  // The old dealer: no credential for the server role.
  const unauthenticated: DealerLink = async () => {
    const [p, e] = channelPair();
    void d.accept(e, { server: true });
    return p;
  };
  const r = await attack(unauthenticated, modelFingerprint(m));
  assert.ok(r.weights, `the attack failed: ${r.codes.join(', ')}`);
  assert.equal(r.weights.length, O * C * 9);
  // The recovered weights ARE conv1: they reproduce the server's layer on a random input, bit for bit.
  const x = Array.from({ length: C * H * W }, (_, i) => BigInt((i * 2654435761) % 20011) - 10005n);
  const lo = Uint32Array.from(x, (v) => Number(BigInt.asUintN(32, v))),
    hi = Uint32Array.from(x, (v) => Number(BigInt.asUintN(32, v >> 32n)));
  const layer: RingLinear = m.secret[conv1.op]!.linear;
  assert.deepEqual(convWith(r.weights, x), Array.from(r64ToBig(layer.apply({ lo, hi }))));
  assert.ok(r.weights.filter((w) => w !== 0n).length > O * C * 9 * 0.9, 'non-trivial weights');
});

test("over TLS the attack fails: the server role needs the server's certificate; the attacker gets no data frame", async () => {
  const [S, D, X] = await Promise.all([identity('server'), identity('dealer'), identity('attacker')]);
  const log: string[] = [];
  const d = new Dealer(m, { onError: (e) => log.push(e.message), pairTimeoutMs: 1000 });
  const l = await d.listen({ port: 0, tls: { cert: D.cert, key: D.key, clientAuth: { pins: [S.fingerprint] } } });
  try {
    // Worst case: the attacker knows the fingerprint. It verifies the dealer properly (it is a legitimate client).
    for (const own of [{}, { cert: X.cert, key: X.key }]) {
      const r = await attack(tcpDealerLink('127.0.0.1', l.port, { pin: D.fingerprint, ...own }), modelFingerprint(m));
      assert.equal(r.weights, null);
      assert.equal(r.dataFrames, 0, 'no s and no M c - s reached the attacker');
      assert.equal(r.codes[0], 'AUTH', r.codes.join(', '));
      assert.ok(
        r.codes.slice(1).every((c) => c === 'ABORTED' || c === 'SESSION'),
        r.codes.join(', '),
      );
    }
    assert.match(log.join('\n'), /a party without the server's certificate claimed the server role/);
    assert.equal(d.pending + d.active, 0);
  } finally {
    await l.close();
  }
});

/** Every byte a client receives in a session, from the server and from the dealer. */
async function clientBytes(
  clientLink: DealerLink,
  port: number,
  pin: string,
): Promise<{ frames: Uint8Array[]; error: string }> {
  const frames: Uint8Array[] = [];
  const tap = (ch: Channel) => {
    const recv = ch.recv.bind(ch);
    ch.recv = async () => {
      const x = await recv();
      frames.push(x);
      return x;
    };
    return ch;
  };
  const ch = tap(await connectTls('127.0.0.1', port, { pin }));
  const err = await runClient(ch, new Float32Array(C * H * W), {
    preprocess: 'dealer',
    dealer: async (role) => tap(await clientLink(role)),
  }).then(
    () => '',
    (e: Error) => e.message,
  );
  return { frames, error: err };
}

test('no fingerprint or digest reaches a client: a dealer with other weights, and a client with another plan, get codes only', async () => {
  const [S, D] = await Promise.all([identity('server'), identity('dealer')]);
  // A dealer on the same plan with other weights (M + 1 in every layer).
  const plus1 = (l: RingLinear): RingLinear => ({
    inSize: l.inSize,
    outSize: l.outSize,
    macs: l.macs,
    dispose: () => {},
    apply: (x: R64) => r64Add(l.apply(x), { lo: new Uint32Array(l.outSize).fill(1), hi: new Uint32Array(l.outSize) }),
  });
  const otherModel: ServerModel = { ...m, secret: m.secret.map((s) => s && { ...s, linear: plus1(s.linear) }) };
  const log: string[] = [];
  const other = new Dealer(otherModel, { onError: (e) => log.push(e.message) });
  const dl = await other.listen({ port: 0, tls: { cert: D.cert, key: D.key, clientAuth: { pins: [S.fingerprint] } } });
  const serverLink = tcpDealerLink('127.0.0.1', dl.port, { pin: D.fingerprint, cert: S.cert, key: S.key });
  const clientLink = tcpDealerLink('127.0.0.1', dl.port, { pin: D.fingerprint });
  const l = await servePi(m, {
    port: 0,
    security: serverSecurity(S),
    preprocess: 'dealer',
    dealer: serverLink,
    onError: () => {},
  });
  try {
    const { frames, error } = await clientBytes(clientLink, l.port, S.fingerprint);
    assert.match(error, /reported (MISMATCH|ABORTED)|peer closed the connection/);
    assert.match(
      log.join('\n'),
      /fingerprint [0-9a-f]{16}\) differ from this dealer's \([0-9a-f]{16}\)/,
      'the dealer logs the details',
    );
    const secrets = [modelFingerprint(m), modelFingerprint(otherModel)];
    const errorFrames = frames.filter((f) => parseErrorFrame(f));
    assert.ok(errorFrames.length >= 1);
    for (const f of errorFrames) {
      const j = JSON.parse(new TextDecoder().decode(f)) as {
        pi_error: { code: keyof typeof ERROR_CODES; message: string; from: string };
      };
      assert.deepEqual(Object.keys(j.pi_error).sort(), ['code', 'from', 'message']);
      assert.equal(j.pi_error.message, ERROR_CODES[j.pi_error.code]);
    }
    for (const f of frames) {
      const text = Buffer.from(f).toString('latin1');
      for (const s of secrets) assert.ok(!text.includes(s), `a frame to the client carries the fingerprint ${s}`);
    }
    // A client claiming another plan hears MISMATCH, without the dealer's digest.
    const raw = await clientLink('client');
    raw.sendJson({ protocol: DEALER_PROTOCOL, role: 'client', session: 'e'.repeat(32), plan: '0'.repeat(16) });
    const reply = await raw.recv();
    assert.equal(parseErrorFrame(reply)?.code, 'MISMATCH');
    assert.ok(!Buffer.from(reply).toString('latin1').includes(m.plan.digest));
    raw.close();
  } finally {
    await l.close();
    await dl.close();
  }
});
