// Issue 32, findings 2, 4, 5, 6 and honest load, replayed on loopback: a peer that never reads is bounded by the
// plan's outgoing limit and dropped when nothing drains; connections and hello-only sessions from one address do not
// lock out a client from another (attackers bind 127.0.0.2); slots held by silent sessions are freed at the short
// per-phase idle deadlines; an expired or not-yet-valid pinned certificate is refused; the report to the client
// carries no timings unless both sides agree; 8 retrying clients against 2 slots all get their answer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { quantize } from '../../src/pi/fixed.js';
import { PROTOCOL, runClient, type Deadlines } from '../../src/pi/protocol.js';
import { servePi, type ServeOptions } from '../../src/pi/node/serve.js';
import { connectChannel, connectTls, StreamChannel } from '../../src/pi/node/transport/tcp.js';
import { generateIdentity } from '../../src/pi/node/transport/tls.js';
import { retryBusy } from '../../src/pi/retry.js';
import { PiError, type PeerError } from '../../src/pi/wire.js';
import { identity, pinned, serverSecurity } from './helpers/tls.js';

manualSeed(9);
const model = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval(),
);
after(() => model.dispose());
const image = Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * 0.7) * 2);
const reference = referenceForward(model, quantize(image, model.plan.fixed.f));
const argmax = (v: ArrayLike<number>) => Array.prototype.indexOf.call(v, Math.max(...Array.from(v)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serve(o: Partial<ServeOptions> & { deadlines?: Partial<Deadlines> } = {}) {
  const S = await identity('server');
  const errors: Error[] = [],
    refused: string[] = [];
  const l = await servePi(model, {
    port: 0,
    security: serverSecurity(S),
    onError: (e) => errors.push(e),
    onRefused: (why) => refused.push(why),
    ...o,
  });
  return { l, errors, refused, client: pinned(S) };
}

/** A raw TCP connection from another loopback address (the attacker's), so per-address limits tell it apart. */
const fromOther = (port: number): Promise<Socket> =>
  new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' }, () => res(s));
    s.once('error', rej);
  });

// ---------------------------------------------------------------------------------------------- finding 2

test('a channel whose peer never reads: sending past maxBufferedOut fails with LIMIT, never buffering more', async () => {
  const held: Socket[] = [];
  const srv = createServer((s) => {
    s.pause();
    held.push(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const port = (srv.address() as { port: number }).port;
    const sock = await new Promise<Socket>((res) => {
      const s = connect({ host: '127.0.0.1', port }, () => res(s));
    });
    const ch = new StreamChannel(sock, { limits: { maxBufferedOut: 1 << 20 } });
    let err: unknown = null,
      sent = 0;
    for (let i = 0; i < 256 && !err; i++) {
      try {
        ch.send(new Uint8Array(256 << 10));
        sent++;
      } catch (e) {
        err = e;
      }
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(err instanceof PiError && err.code === 'LIMIT', `sent ${sent} frames of 256 KiB: ${String(err)}`);
    assert.ok(ch.memory().peakOut <= (1 << 20) + (256 << 10) + 4, `peak outgoing ${ch.memory().peakOut}`);
    ch.close();
  } finally {
    for (const s of held) s.destroy();
    srv.close();
  }
});

test('a channel with unsent bytes above half its outgoing bound waits for them to drain before it reads; a peer that reads nothing is TIMEOUT', async () => {
  const held: Socket[] = [];
  // The peer sends one frame at once, then never reads.
  const srv = createServer((s) => {
    s.pause();
    s.write(Buffer.from([0, 0, 0, 1, 7]));
    held.push(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const port = (srv.address() as { port: number }).port;
    const sock = await new Promise<Socket>((res) => {
      const s = connect({ host: '127.0.0.1', port }, () => res(s));
    });
    const ch = new StreamChannel(sock, { limits: { maxBufferedOut: 64 << 20, idleMs: 400 } });
    for (let i = 0; i < 64 && ch.memory().bufferedOut <= 32 << 20; i++) ch.send(new Uint8Array(1 << 20)); // loopback buffers take a few MB
    assert.ok(ch.memory().bufferedOut > 32 << 20, `only ${ch.memory().bufferedOut} bytes stayed unsent`);
    const t0 = Date.now();
    await assert.rejects(ch.recv(), (e: PiError) => e.code === 'TIMEOUT' && /read nothing/.test(e.message));
    assert.ok(Date.now() - t0 >= 350, 'waited the idle timeout');
    ch.close();
  } finally {
    for (const s of held) s.destroy();
    srv.close();
  }
});

test('a server loop answering each request with 1 MiB, against a peer that sends 300 requests and reads nothing: RSS < +150 MB, dropped at the idle timeout', async () => {
  const srv = createServer((s) => {
    // The peer: 300 requests at once, then it never reads (its socket stays paused).
    s.pause();
    const req = Buffer.from([0, 0, 0, 1, 1]);
    s.write(Buffer.concat(Array.from({ length: 300 }, () => req)));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const port = (srv.address() as { port: number }).port;
    const sock = await new Promise<Socket>((res) => {
      const s = connect({ host: '127.0.0.1', port }, () => res(s));
    });
    // The server side: the bound a plan would give (twice what the client may hold unread), a short idle timeout.
    const ch = new StreamChannel(sock, { limits: { maxBufferedOut: 32 << 20, idleMs: 500 } });
    const base = process.memoryUsage.rss();
    let peak = base,
      answered = 0;
    const t = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 10);
    let err: unknown = null;
    try {
      for (;;) {
        await ch.recv();
        ch.send(new Uint8Array(1 << 20).fill(answered & 255)); // fresh pages: each answer costs real memory
        answered++;
        if (answered >= 300) break;
      }
    } catch (e) {
      err = e;
    }
    clearInterval(t);
    peak = Math.max(peak, process.memoryUsage.rss());
    assert.ok(err instanceof PiError && err.code === 'TIMEOUT', `answered ${answered} requests: ${String(err)}`);
    assert.ok(answered < 300, 'the server stopped answering a peer that reads nothing');
    assert.ok(peak - base < 150e6, `RSS grew by ${((peak - base) / 1e6).toFixed(0)} MB`);
    ch.close();
  } finally {
    srv.close();
  }
});

// ---------------------------------------------------------------------------------------------- finding 4

test('70 silent connections from one address do not lock out a client from another; they are dropped at the hello deadline', async () => {
  const { l, client, refused } = await serve({ deadlines: { helloMs: 1500 } });
  try {
    const silent = await Promise.all(
      Array.from({ length: 70 }, () =>
        fromOther(l.port).then((s) => {
          s.on('error', () => {});
          return s;
        }),
      ),
    );
    await sleep(100);
    const t0 = Date.now();
    const ch = await connectChannel('127.0.0.1', l.port, client);
    const r = await runClient(ch, image);
    ch.close();
    assert.equal(argmax(r.logits), argmax(reference.logits));
    assert.ok(
      refused.some((w) => /from 127\.0\.0\.2/.test(w)),
      `refused: ${refused.slice(0, 3).join('; ')}`,
    );
    // Every silent connection is closed by the hello deadline.
    await Promise.all(silent.map((s) => (s.destroyed ? null : new Promise((res) => s.once('close', res)))));
    assert.ok(Date.now() - t0 < 1500 + 8000);
    for (let i = 0; i < 300 && l.connections; i++) await sleep(10);
    assert.equal(l.connections, 0);
  } finally {
    await l.close();
  }
});

test('two hello-only sessions free their slots at the setup idle deadline; an honest client is then served', async () => {
  const { l, client, errors } = await serve({
    maxSessions: 2,
    maxSessionsPerAddress: 2,
    deadlines: { setupIdleMs: 2000 },
  });
  try {
    const holders = await Promise.all(
      [0, 1].map(async () => {
        const ch = await connectChannel('127.0.0.1', l.port, client);
        ch.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'ot', session: 'ab'.repeat(16) });
        await ch.recv(); // the plan: the slot is held
        return ch;
      }),
    );
    assert.equal(l.sessions().length, 2);
    const t0 = Date.now();
    for (let i = 0; i < 400 && l.sessions().length; i++) await sleep(10);
    assert.equal(l.sessions().length, 0, 'the hello-only sessions still hold their slots');
    assert.ok(Date.now() - t0 < 2000 + 2000, `freed after ${Date.now() - t0} ms`);
    assert.match(errors.map((e) => e.message).join('\n'), /idle timeout 2\.0 s/);
    const r = await runClient(await connectChannel('127.0.0.1', l.port, client), image);
    assert.equal(argmax(r.logits), argmax(reference.logits));
    for (const h of holders) h.close();
  } finally {
    await l.close();
  }
});

test('a client stalled after the offline phase frees its slot at the online idle deadline', async () => {
  const { l, client } = await serve({ deadlines: { onlineIdleMs: 600 } });
  try {
    const ch = await connectChannel('127.0.0.1', l.port, client);
    const send = ch.send.bind(ch);
    ch.send = (d: Uint8Array) => {
      if (d.byteLength !== 8 * 192) send(d);
    }; // never sends its input share
    const run = runClient(ch, image);
    run.catch(() => {});
    let t0 = 0;
    for (let i = 0; i < 3000 && !t0; i++) {
      await sleep(10);
      if (l.sessions()[0]?.phase === 'online') t0 = Date.now();
    }
    assert.ok(t0, 'the session reached the online phase');
    for (let i = 0; i < 400 && l.sessions().length; i++) await sleep(10);
    assert.equal(l.sessions().length, 0);
    assert.ok(Date.now() - t0 < 600 + 2000, `freed after ${Date.now() - t0} ms (online idle deadline 0.6 s)`);
    await assert.rejects(run, (e: PeerError) => e.code === 'TIMEOUT');
  } finally {
    await l.close();
  }
});

test('per-address session limit: a second session from the same address is BUSY', async () => {
  const { l, client } = await serve({ maxSessions: 4, maxSessionsPerAddress: 1, deadlines: { setupIdleMs: 3000 } });
  try {
    const holder = await connectChannel('127.0.0.1', l.port, client);
    holder.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'ot', session: 'ab'.repeat(16) });
    await holder.recv();
    await assert.rejects(
      runClient(await connectChannel('127.0.0.1', l.port, client), image),
      (e: PeerError) => e.code === 'BUSY',
    );
    holder.close();
  } finally {
    await l.close();
  }
});

// ---------------------------------------------------------------------------------------------- finding 5

for (const [what, notBefore, days] of [
  ['expired', new Date(Date.now() - 10 * 86_400_000), 1],
  ['not yet valid', new Date(Date.now() + 5 * 86_400_000), 1],
] as const) {
  test(`a pinned certificate that is ${what} is refused (AUTH), as --server-cert refuses it`, async () => {
    const S = await generateIdentity({ commonName: `pin-${what}`, notBefore, days });
    const l = await servePi(model, { port: 0, security: serverSecurity(S), onError: () => {} });
    try {
      await assert.rejects(
        connectTls('127.0.0.1', l.port, { pin: S.fingerprint }),
        (e: PiError) => e.code === 'AUTH' && /expired|not yet valid/.test(e.message),
      );
      await assert.rejects(connectTls('127.0.0.1', l.port, { ca: S.cert }), (e: PiError) => e.code === 'AUTH');
    } finally {
      await l.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------- finding 6

test('the report to the client carries no timings or memory by default; with --report-timings and a client that asks, it does', async () => {
  for (const allow of [false, true]) {
    const { l, client } = await serve({ reportTimings: allow });
    try {
      const r = await runClient(await connectChannel('127.0.0.1', l.port, client), image, { timings: true });
      const s = r.server;
      const ms = [...s.entries.map((e) => e.ms), ...Object.values(s.phases).map((p) => p.ms)];
      const mem = Object.values(s.memory).filter((v) => typeof v === 'number') as number[];
      if (!allow) {
        assert.ok(
          ms.every((v) => v === 0),
          `timings sent: ${ms.slice(0, 5)}`,
        );
        assert.ok(s.entries.every((e) => e.computeMs === undefined));
        assert.ok(
          mem.every((v) => v === 0),
          `memory sent: ${JSON.stringify(s.memory)}`,
        );
        assert.ok(s.phases.offline.bytesSent > 0, 'bytes (which the client sees anyway) stay');
      } else {
        assert.ok(ms.some((v) => v > 0));
      }
      // A client that does not ask gets none either way.
      const r2 = await runClient(await connectChannel('127.0.0.1', l.port, client), image);
      assert.ok(r2.server.entries.every((e) => e.ms === 0));
    } finally {
      await l.close();
    }
  }
});

// ---------------------------------------------------------------------------------------------- honest load

test('8 clients at once against --max-sessions 2: BUSY carries a retry hint, and retrying clients all get their answer', async () => {
  const { l, client } = await serve({ maxSessions: 2 });
  try {
    let hinted = 0;
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        retryBusy(async () => runClient(await connectChannel('127.0.0.1', l.port, client), image), {
          attempts: 40,
          maxWaitMs: 2000,
          onRetry: (e) => {
            if (e.retryMs !== undefined && e.retryMs > 0) hinted++;
          },
        }),
      ),
    );
    for (const r of results) assert.equal(argmax(r.logits), argmax(reference.logits));
    assert.ok(hinted > 0, 'some client was told BUSY with a retry hint');
  } finally {
    await l.close();
  }
});
