// The trusted dealer as a third party: what the server receives never contains the client's masks; sessions pair by
// id; dealer faults (disconnect, unknown id, wrong sizes, other weights) give clear errors on both sides and the
// dealer serves the next session.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import type { ServerModel } from '../../src/pi/plan.js';
import { PROTOCOL, runClient, serveClient, type SessionOptions } from '../../src/pi/protocol.js';
import { Dealer, DEALER_PROTOCOL, type DealerLink } from '../../src/pi/node/dealer.js';
import { parseErrorFrame } from '../../src/pi/wire.js';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { quantize, r64Add, r64ToBig, type R64 } from '../../src/pi/fixed.js';
import type { RingLinear } from '../../src/pi/ringlinear.js';

manualSeed(11);
const m: ServerModel = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10 })).eval(),
);
after(() => m.dispose());
const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.cos(seed * 100 + i * 0.9) * 1.5);
const linear = m.plan.ops.map((o, i) => ({ o, i })).filter(({ o }) => o.op === 'conv' || o.op === 'fc');
const firstIn = 8 * m.plan.ops[(linear[0]!.o as { input: number }).input]!.size;

function newDealer(o: { pairTimeoutMs?: number; helloMs?: number } = {}) {
  const errors: string[] = [];
  let sessions = 0;
  const d = new Dealer(m, { ...o, onError: (e) => errors.push(e.message), onSession: () => sessions++ });
  return { d, errors, sessions: () => sessions };
}

/** A link to `d` whose party end the caller may tap or change (`edit` runs on it before the hello is sent). */
function linkWith(d: Dealer, edit: (party: Channel, dealerEnd: Channel) => void): DealerLink {
  return async (role) => {
    const [party, dealerEnd] = channelPair({ name: `dealer-${role}` });
    void d.accept(dealerEnd, { server: role === 'server' });
    edit(party, dealerEnd);
    return party;
  };
}

function recordRecv(ch: Channel, into: Uint8Array[]): void {
  const recv = ch.recv.bind(ch);
  ch.recv = async () => {
    const msg = await recv();
    into.push(msg);
    return msg;
  };
}
function recordSend(ch: Channel, into: Uint8Array[]): void {
  const send = ch.send.bind(ch);
  ch.send = (data: Uint8Array) => {
    into.push(data.slice());
    send(data);
  };
}

async function session(
  server: SessionOptions,
  client: SessionOptions,
  x = image(1),
  edit?: { s?: (ch: Channel) => void; c?: (ch: Channel) => void },
) {
  const [s, c] = channelPair();
  edit?.s?.(s);
  edit?.c?.(c);
  return Promise.allSettled([
    serveClient(s, m, server),
    runClient(c, x, { preprocess: 'dealer', relu: 'gc', ...client }),
  ]);
}

async function expectGoodSession(d: Dealer, seed: number): Promise<void> {
  const x = image(seed);
  const [rs, rc] = await session({ dealer: d.link() }, { dealer: d.link() }, x);
  assert.equal(rs.status, 'fulfilled', rs.status === 'rejected' ? String(rs.reason) : '');
  assert.equal(rc.status, 'fulfilled', rc.status === 'rejected' ? String(rc.reason) : '');
  const ref = referenceForward(m, quantize(x, m.plan.fixed.f));
  assert.deepEqual(r64ToBig(rc.value.out), r64ToBig(ref.out));
}

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), 'condition not reached within 1 s');
}

const reason = (r: PromiseSettledResult<unknown>): string => {
  assert.equal(r.status, 'rejected');
  return ((r as PromiseRejectedResult).reason as Error).message;
};

/** 64-bit words at 8-byte-aligned offsets of `msgs`, as "hi:lo" keys. */
function words(msgs: Uint8Array[]): string[] {
  const out: string[] = [];
  for (const msg of msgs) {
    const a = msg.slice(0, msg.byteLength & ~7);
    const w = new Uint32Array(a.buffer, 0, a.byteLength >>> 2);
    for (let i = 0; i < w.length; i += 2) out.push(`${w[i + 1]}:${w[i]}`);
  }
  return out;
}

test("the server's whole transcript (from client and dealer) contains none of the client's masks nor its shares M c - s", async () => {
  const { d, errors } = newDealer();
  const atServer: Uint8Array[] = [],
    masks: Uint8Array[] = [],
    fromDealer: Uint8Array[] = [];
  const x = image(2);
  const [rs, rc] = await session(
    { dealer: linkWith(d, (p) => recordRecv(p, atServer)) },
    {
      dealer: linkWith(d, (p) => {
        recordSend(p, masks);
        recordRecv(p, fromDealer);
      }),
    },
    x,
    { s: (ch) => recordRecv(ch, atServer) },
  );
  assert.equal(rs.status, 'fulfilled');
  assert.equal(rc.status, 'fulfilled');
  assert.deepEqual(errors, []);
  // What the client sent the dealer: its hello, then exactly one mask c per secret linear layer, in plan order.
  const cs = masks.slice(1);
  assert.equal(cs.length, linear.length);
  cs.forEach((c, k) => assert.equal(c.byteLength, 8 * m.plan.ops[(linear[k]!.o as { input: number }).input]!.size));
  const secret = new Set([...words(cs), ...words(fromDealer)]);
  assert.ok(secret.size > 3000, `${secret.size} distinct secret words`);
  // The detector works: the client's masks are all found in what it sent.
  assert.equal(words(cs).filter((w) => secret.has(w)).length, words(cs).length);
  const seen = words(atServer);
  assert.ok(seen.length > 100000, `server received ${seen.length} words`);
  const hits = seen.filter((w) => secret.has(w));
  assert.deepEqual(hits, [], `${hits.length} mask words in the server's transcript`);
  // And the protocol still computes the right thing.
  assert.deepEqual(r64ToBig(rc.value.out), r64ToBig(referenceForward(m, quantize(x, m.plan.fixed.f)).out));
});

test('unknown or malformed session ids: clear errors on both sides; the dealer serves the next session', async () => {
  const { d, errors, sessions } = newDealer({ pairTimeoutMs: 300, helloMs: 300 });
  // The client tells the dealer another session id than the one it gave the server.
  const wrongId = linkWith(d, (p) => {
    const send = p.send.bind(p);
    let first = true;
    p.send = (data) => {
      if (first) {
        first = false;
        const h = JSON.parse(new TextDecoder().decode(data)) as { session: string };
        h.session = 'f'.repeat(32);
        data = new TextEncoder().encode(JSON.stringify(h));
      }
      send(data);
    };
  });
  const [rs, rc] = await session({ dealer: d.link() }, { dealer: wrongId });
  // The parties hear the code only; the dealer's log has the details.
  assert.match(reason(rs), /the dealer reported SESSION \(unknown or expired session\)/);
  // The client hears of it from the dealer (its own session times out) or from the server, whichever comes first.
  assert.match(reason(rc), /the (dealer reported SESSION|server reported ABORTED)/);
  await until(() => errors.length === 2 && d.pending === 0);
  assert.match(errors.join('\n'), /session [0-9a-f]{32}: no client joined within 0\.3 s \(wrong or unknown session id/);

  // A malformed id in the client's hello is rejected by the server, and by the dealer.
  const [s, c] = channelPair();
  const srv = serveClient(s, m, { dealer: d.link() });
  c.sendJson({ protocol: PROTOCOL, preprocess: 'dealer', relu: 'gc', session: 'not-hex' });
  await assert.rejects(srv, /client hello: malformed session id "not-hex"/);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(await c.recv())), {
    pi_error: { code: 'MALFORMED', message: 'malformed message', from: 'server' },
  });
  const raw = await d.link()('client');
  raw.sendJson({ protocol: DEALER_PROTOCOL, role: 'client', session: 'AB', plan: m.plan.digest });
  assert.deepEqual(JSON.parse(new TextDecoder().decode(await raw.recv())), {
    pi_error: { code: 'MALFORMED', message: 'malformed message', from: 'dealer' },
  });
  await until(() => /client hello: malformed session id "AB"/.test(errors.join('\n')));

  // A connection that never says hello is told TIMEOUT and closed after the hello deadline.
  const mute = await d.link()('server');
  assert.equal(parseErrorFrame(await mute.recv())?.code, 'TIMEOUT');
  await assert.rejects(mute.recv(), /peer closed the connection/);
  await until(() => /no hello within 0\.3 s/.test(errors.join('\n')));

  await expectGoodSession(d, 3);
  assert.equal(sessions(), 1);
});

test('the dealer disconnecting mid-session: clear errors on both sides; the dealer serves the next session', async () => {
  const { d, errors } = newDealer();
  // The dealer's ends of both links go away once the server got two layers' s.
  const ends: Channel[] = [];
  const crash = (party: 'server' | 'client') =>
    linkWith(d, (p, dealerEnd) => {
      ends.push(dealerEnd);
      if (party === 'client') return;
      const recv = p.recv.bind(p);
      let n = 0;
      p.recv = async () => {
        const msg = await recv();
        if (++n === 2) for (const e of ends) e.close();
        return msg;
      };
    });
  const [rs, rc] = await session({ dealer: crash('server') }, { dealer: crash('client') });
  // Each party either notices itself or hears it from the other one first.
  const lost = /dealer-(server|client):A: .*peer closed the connection|reported ABORTED/;
  assert.match(reason(rs), lost);
  assert.match(reason(rc), lost);
  await until(() => errors.length === 1);
  assert.match(errors[0]!, /session [0-9a-f]{32}: /);
  await expectGoodSession(d, 4);
  assert.equal(errors.length, 1);
});

test('a server without a dealer, or a dealer with other weights, fails with a clear error on both sides', async () => {
  const [rs, rc] = await session({}, { dealer: newDealer().d.link() });
  assert.match(reason(rs), /^preprocessing 'dealer' needs the dealer's address \(--dealer HOST:PORT/);
  assert.match(reason(rc), /the server reported INTERNAL \(internal error\)/);

  // Same plan, M + 1 in every layer.
  const plus1 = (l: RingLinear): RingLinear => ({
    inSize: l.inSize,
    outSize: l.outSize,
    macs: l.macs,
    dispose: () => {},
    apply: (x: R64) => r64Add(l.apply(x), { lo: new Uint32Array(l.outSize).fill(1), hi: new Uint32Array(l.outSize) }),
  });
  const errors: string[] = [];
  const other = new Dealer(
    { ...m, secret: m.secret.map((s) => s && { ...s, linear: plus1(s.linear) }) },
    { onError: (e) => errors.push(e.message) },
  );
  const [rs2, rc2] = await session({ dealer: other.link() }, { dealer: other.link() });
  // Both parties hear MISMATCH; only the dealer's own log names the fingerprints.
  assert.match(reason(rs2), /the dealer reported MISMATCH \(the server and the dealer serve different models\)/);
  assert.match(reason(rc2), /reported (MISMATCH|ABORTED)/);
  assert.doesNotMatch(reason(rs2) + reason(rc2), /[0-9a-f]{16}/);
  assert.match(errors.join('\n'), /the server's weights \(fingerprint [0-9a-f]{16}\) differ from this dealer's/);
});

test('wrong-size messages from the client: its input share to the server, its mask to the dealer', async () => {
  const { d, errors } = newDealer();
  // The input share (the client's first message of 8 x input size to the server) loses its last element.
  const cut =
    (size: number, skip = 0) =>
    (ch: Channel) => {
      const send = ch.send.bind(ch);
      let left = skip,
        done = false;
      ch.send = (data) => {
        if (!done && data.byteLength === size && left-- === 0) {
          done = true;
          data = data.subarray(0, size - 8);
        }
        send(data);
      };
    };
  const n = 8 * m.plan.ops[0]!.size;
  const [rs, rc] = await session({ dealer: d.link() }, { dealer: d.link() }, image(5), { c: cut(n) });
  assert.match(reason(rs), new RegExp(`malformed message: online: input share: expected ${n} bytes, got ${n - 8}`));
  assert.match(reason(rc), /the server reported MALFORMED \(malformed message\)/);
  assert.deepEqual(errors, []);

  // The client's first mask to the dealer loses its last element (the hello is the dealer link's first message).
  const [rs2, rc2] = await session({ dealer: d.link() }, { dealer: linkWith(d, (p) => cut(firstIn)(p)) });
  const want = new RegExp(
    `malformed message: client mask for ${linear[0]!.o.name}: expected ${firstIn} bytes, got ${firstIn - 8}`,
  );
  assert.match(reason(rc2), /the dealer reported MALFORMED \(malformed message\)/);
  assert.match(reason(rs2), /the dealer reported MALFORMED|reported ABORTED/);
  await until(() => errors.length === 1);
  assert.match(errors[0]!, want);
  await expectGoodSession(d, 6);
});
