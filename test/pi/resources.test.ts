// Bounded resources on loopback: hostile connections (a 1 GiB length prefix, random bytes) cost the server almost no
// memory while an honest client gets its answer; silent connections are closed at the hello deadline; a client that
// stalls after the offline phase is dropped at the online deadline and its session's memory is freed; sessions past
// --max-sessions are refused with BUSY. Sessions use the default preprocessing (he: client and server only).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import * as tls from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';
import { PROTOCOL, runClient, type Deadlines } from '../../src/pi/protocol.js';
import { servePi, type PiServer, type ServeOptions } from '../../src/pi/node/serve.js';
import { connectChannel, type ClientSecurity } from '../../src/pi/node/transport/tcp.js';
import { framePrefix } from '../../src/pi/transport/channel.js';
import { parseErrorFrame, PeerError } from '../../src/pi/wire.js';
import type { ReluServer } from '../../src/pi/relu/index.js';
import { identity, pinned, serverSecurity } from './helpers/tls.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

manualSeed(9);
const model = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval(),
);
after(() => model.dispose());
const image = Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * 0.7) * 2);
const reference = referenceForward(model, quantize(image, model.plan.fixed.f));
const argmax = (v: ArrayLike<number>) => Array.prototype.indexOf.call(v, Math.max(...Array.from(v)));

async function serve(o: Partial<ServeOptions> & { deadlines?: Partial<Deadlines> }, insecure = false) {
  const S = await identity('server');
  const errors: Error[] = [],
    refused: string[] = [];
  const l = await servePi(model, {
    port: 0,
    security: insecure ? { insecure: true } : serverSecurity(S),
    onError: (e) => errors.push(e),
    onRefused: (why) => refused.push(why),
    ...o,
  });
  const client: ClientSecurity = insecure ? { insecure: true } : pinned(S);
  return { l, errors, refused, client };
}

async function honest(l: PiServer, sec: ClientSecurity) {
  // The default ReLU protocol (ot) adds 0 or 1 ULP per kept ReLU: a few hundred ULPs of the logits at most.
  const r = await runClient(await connectChannel('127.0.0.1', l.port, sec), image);
  const got = r64ToBig(r.out),
    want = r64ToBig(reference.out);
  got.forEach((v, i) =>
    assert.ok(
      (v > want[i]! ? v - want[i]! : want[i]! - v) < 2n ** BigInt(r.scale - 8),
      `logit ${i}: ${v} vs ${want[i]}`,
    ),
  );
  assert.equal(argmax(r.logits), argmax(reference.logits), 'the right class');
  return r;
}

/** Writes up to `total` pseudo-random bytes (after `head`) as fast as the server takes them; resolves when the
 * connection is closed, with what the attacker received and how long the server kept it. */
function flood(sock: Socket, head: Uint8Array, total: number): Promise<{ got: Buffer; ms: number; sent: number }> {
  const t0 = Date.now(),
    chunk = Buffer.alloc(1 << 16);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24;
  const got: Buffer[] = [];
  let sent = 0;
  return new Promise((resolve) => {
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('error', () => {});
    sock.once('close', () => resolve({ got: Buffer.concat(got), ms: Date.now() - t0, sent }));
    const pump = () => {
      while (sent < total && !sock.destroyed) {
        sent += chunk.length;
        if (!sock.write(chunk)) {
          sock.once('drain', pump);
          return;
        }
      }
      if (sent >= total) sock.end();
    };
    sock.write(head);
    pump();
  });
}

const rawTcp = (port: number): Promise<Socket> =>
  new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port }, () => res(s));
    s.once('error', rej);
  });
const rawTls = (port: number): Promise<tls.TLSSocket> =>
  new Promise((res, rej) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => res(s));
    s.once('error', rej);
  });

/** The first frame of what a party received, as an error frame's code. */
const firstErrorCode = (b: Buffer): string | undefined =>
  b.length >= 4 ? parseErrorFrame(b.subarray(4, 4 + b.readUInt32BE(0)))?.code : undefined;

/** Samples the RSS every 10 ms while `fn` runs; returns fn's result and the peak. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage.rss();
  const t = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, process.memoryUsage.rss()) };
  } finally {
    clearInterval(t);
  }
}

const MB = 1e6,
  ATTACK_BYTES = 16 << 20; // each hostile connection tries to make the server take 16 MiB (320 MiB in all)

for (const insecure of [false, true]) {
  test(`20 hostile connections (1 GiB length prefixes, random bytes) over ${insecure ? 'plain TCP (--insecure)' : 'TLS'}: server RSS < +100 MB, an honest client gets the right class`, async () => {
    const { l, refused, client } = await serve({ deadlines: { helloMs: 3000 } }, insecure);
    try {
      await honest(l, client); // warm: model, circuits, kernels
      gc();
      const base = process.memoryUsage.rss();
      const {
        value: [attacks],
        peak,
      } = await peakRss(() =>
        Promise.all([
          Promise.all(
            Array.from({ length: 20 }, async (_, i) => {
              const prefix = i % 2 === 0;
              if (!insecure && prefix) return flood(await rawTls(l.port), framePrefix(2 ** 30), ATTACK_BYTES); // past the handshake
              return flood(await rawTcp(l.port), prefix ? framePrefix(2 ** 30) : Buffer.alloc(0), ATTACK_BYTES); // random from byte 0
            }),
          ),
          honest(l, client),
        ]),
      );
      assert.ok(peak - base < 100 * MB, `server RSS grew by ${((peak - base) / MB).toFixed(1)} MB`);
      for (const [i, a] of attacks.entries()) {
        assert.ok(a.ms < 3000, `connection ${i} was held ${a.ms} ms`);
        assert.ok(a.sent < ATTACK_BYTES, `connection ${i}: the server took all ${a.sent} bytes`);
        // Past the framing, the server answers a too-large prefix with LIMIT; a failed TLS handshake gets nothing.
        if (i % 2 === 0) assert.equal(firstErrorCode(a.got), 'LIMIT', `connection ${i}`);
      }
      if (!insecure) assert.ok(refused.filter((w) => /TLS handshake failed/.test(w)).length >= 10, refused.join('; '));
      assert.equal(l.sessions().length, 0);
    } finally {
      await l.close();
    }
  });
}

test('20 silent connections are closed at the hello deadline (10 before, 10 after the TLS handshake)', async () => {
  const helloMs = 400;
  const { l, client } = await serve({ deadlines: { helloMs } });
  try {
    const t0 = Date.now();
    const closed = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const s: Socket = i < 10 ? await rawTcp(l.port) : await rawTls(l.port);
        const got: Buffer[] = [];
        s.on('data', (d: Buffer) => got.push(d));
        s.on('error', () => {});
        await new Promise((r) => s.once('close', r));
        return { ms: Date.now() - t0, code: firstErrorCode(Buffer.concat(got)) };
      }).concat([honest(l, client).then(() => ({ ms: -1, code: 'honest' }))]),
    );
    for (const [i, c] of closed.slice(0, 20).entries()) {
      assert.ok(c.ms >= helloMs - 50 && c.ms < helloMs + 1500, `connection ${i} closed after ${c.ms} ms`);
      // Past the handshake the server says why; before it, TLS has no channel to say it on.
      if (i >= 10) assert.equal(c.code, 'TIMEOUT', `connection ${i}`);
    }
    assert.equal(closed[20]!.code, 'honest', 'an honest client was served meanwhile');
    assert.equal(l.sessions().length, 0);
  } finally {
    await l.close();
  }
});

test('a client that stalls after the offline phase is dropped at the online deadline, and its session is freed', async () => {
  let weak: WeakRef<ReluServer> | null = null;
  const { l, errors, client } = await serve({
    deadlines: { onlineMs: 500 },
    hooks: {
      onRelu: (r) => {
        weak = new WeakRef(r as ReluServer);
      },
    },
  });
  try {
    const ch = await connectChannel('127.0.0.1', l.port, client);
    const send = ch.send.bind(ch);
    ch.send = (d: Uint8Array) => {
      if (d.byteLength !== 8 * 192) send(d);
    }; // never sends its input share
    const t0 = Date.now();
    const run = runClient(ch, image);
    let held = 0;
    for (let i = 0; i < 400 && !held; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const s = l.sessions()[0];
      if (s?.phase === 'online') held = s.heldBytes;
    }
    assert.ok(held > 10_000, `the stalled session holds ${held} bytes of garbling state`);
    await assert.rejects(
      run,
      (e: PeerError) =>
        e instanceof PeerError &&
        e.code === 'TIMEOUT' &&
        /the server reported TIMEOUT \(deadline exceeded\)/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 500 + 8000);
    for (let i = 0; i < 100 && l.sessions().length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(l.sessions().length, 0);
    assert.match(
      errors.map((e) => e.message).join('\n'),
      /server: the online phase took longer than its deadline of 0\.5 s/,
    );
    // Nothing keeps the session's protocol state: it is collected.
    for (let i = 0; i < 20 && weak!.deref(); i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    assert.equal(weak!.deref(), undefined, "the dropped session's garbling state is still referenced");
  } finally {
    await l.close();
  }
});

test('past --max-sessions a client is refused with BUSY; the slot frees when the holder is dropped', async () => {
  // The setup deadline also bounds the honest client's own set-up (base OTs for both parties in this one process):
  // 3 s leaves room on a loaded machine (1.5 s failed at load 4).
  const { l, errors, client } = await serve({ maxSessions: 1, deadlines: { setupMs: 3000 } });
  try {
    // The holder says hello and then nothing (it never answers the base OTs).
    const holder = await connectChannel('127.0.0.1', l.port, client);
    holder.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'gc', session: 'cd'.repeat(16) });
    await holder.recv(); // the plan
    const busy = runClient(await connectChannel('127.0.0.1', l.port, client), image);
    await assert.rejects(
      busy,
      (e: PeerError) =>
        e.code === 'BUSY' && /the server reported BUSY \(too many sessions, try again later\)/.test(e.message),
    );
    for (let i = 0; i < 600 && l.sessions().length; i++) await new Promise((r) => setTimeout(r, 10)); // the holder's deadline
    await honest(l, client);
    const log = errors.map((e) => e.message).join('\n');
    assert.match(log, /refused a session: the maximum number of sessions is running/);
    assert.match(log, /the setup phase took longer than its deadline of 3\.0 s/);
    holder.close();
  } finally {
    await l.close();
  }
});
