// Operating `pi serve`: Prometheus metrics and the health check on their own loopback port, one end record per session
// whatever its outcome (the JSON log and audit line), draining (new sessions BUSY, live ones finish), per-client
// budgets and rates, and the retry waits.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan } from '../../src/pi/node/compile.js';
import { PROTOCOL, runClient } from '../../src/pi/protocol.js';
import { ClientBudget, servePi, type SessionEnd, type ServeOptions } from '../../src/pi/node/serve.js';
import { ServeMetrics, serveMetrics } from '../../src/pi/node/metrics.js';
import { retryWaitMs } from '../../src/pi/retry.js';
import { connectChannel } from '../../src/pi/node/transport/tcp.js';
import type { PiError, PeerError } from '../../src/pi/wire.js';
import { identity, pinned, serverSecurity } from './helpers/tls.js';

manualSeed(9);
const model = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval(),
);
after(() => model.dispose());
const image = Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * 0.7) * 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function serve(o: Partial<ServeOptions> = {}) {
  const S = await identity('server');
  const ends: SessionEnd[] = [];
  const metrics = new ServeMetrics();
  const l = await servePi(model, {
    port: 0,
    security: serverSecurity(S),
    onError: () => {},
    onRefused: (w) => metrics.refusedConnection(w),
    onEnd: (e) => {
      ends.push(e);
      metrics.session(e);
    },
    ...o,
  });
  return { l, ends, metrics, client: pinned(S) };
}

const fetchText = (port: number, path: string): Promise<{ status: number; body: string; type: string }> =>
  new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode!, body, type: String(res.headers['content-type']) }));
    }).on('error', reject);
  });

test('metrics and health: sessions by outcome, errors by code, phase durations, bytes, RSS; /healthz turns 503 while draining', async () => {
  const { l, metrics, ends, client } = await serve({ maxSessions: 1, deadlines: { setupIdleMs: 1500 } });
  const m = await serveMetrics({ port: 0, metrics, pool: l.pool, connections: () => l.connections });
  try {
    await runClient(await connectChannel('127.0.0.1', l.port, client), image);
    // A hello-only holder, and a client refused with BUSY meanwhile.
    const holder = await connectChannel('127.0.0.1', l.port, client);
    holder.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'ot', session: 'ab'.repeat(16) });
    await holder.recv();
    await assert.rejects(
      runClient(await connectChannel('127.0.0.1', l.port, client), image),
      (e: PeerError) => e.code === 'BUSY' && (e.retryMs ?? 0) >= 250,
    );
    for (let i = 0; i < 400 && ends.length < 3; i++) await sleep(10);
    holder.close();
    const r = await fetchText(m.port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^pi_sessions_total\{outcome="ok"\} 1$/m);
    assert.match(r.body, /^pi_sessions_total\{outcome="BUSY"\} 1$/m);
    assert.match(
      r.body,
      /^pi_session_errors_total\{code="TIMEOUT"\} 1$/m,
      'the hello-only holder, at the setup idle deadline',
    );
    assert.match(r.body, /^pi_phase_duration_seconds_count\{phase="online"\} 1$/m);
    assert.match(r.body, /^pi_bytes_sent_total [1-9]\d*$/m);
    assert.match(r.body, /^process_resident_memory_bytes [1-9]\d*$/m);
    assert.match(r.body, /^# TYPE pi_phase_duration_seconds histogram$/m);
    const ok = ends.find((e) => e.outcome === 'ok')!;
    assert.equal(ok.identity, 'ip:127.0.0.1');
    assert.equal(ok.medium, 'tls');
    assert.equal(ok.admitted, true);
    assert.ok(ok.phases!.online.ms > 0 && ok.bytesSent > 0);
    const busy = ends.find((e) => e.outcome === 'BUSY')!;
    assert.equal(busy.admitted, false);
    assert.equal(busy.phase, 'hello');
    assert.match(busy.error!, /maximum number of sessions/);
    assert.deepEqual(JSON.parse((await fetchText(m.port, '/healthz')).body), {
      status: 'ok',
      sessions: 0,
      maxSessions: 1,
    });
    await l.pool.drain(100);
    const h = await fetchText(m.port, '/healthz');
    assert.equal(h.status, 503);
    assert.match(h.body, /draining/);
    assert.equal((await fetchText(m.port, '/nope')).status, 404);
  } finally {
    await m.close();
    await l.close();
  }
});

test('draining: a live session finishes, a new one is refused with BUSY, drain() resolves when the last ends', async () => {
  const { l, client } = await serve({ maxSessions: 2, maxSessionsPerAddress: 2 });
  try {
    const live = runClient(await connectChannel('127.0.0.1', l.port, client), image);
    for (let i = 0; i < 3000 && l.pool.admitted === 0; i++) await sleep(5);
    assert.equal(l.pool.admitted, 1);
    let drained = false;
    const d = l.pool.drain(60_000).then((v) => {
      drained = v;
    });
    await assert.rejects(
      runClient(await connectChannel('127.0.0.1', l.port, client), image),
      (e: PeerError) => e.code === 'BUSY',
    );
    const r = await live;
    assert.equal(r.logits.length, 10);
    await d;
    assert.equal(drained, true);
    assert.equal(l.pool.admitted, 0);
  } finally {
    await l.close();
  }
});

test('drain() gives up at its deadline while a session still runs', async () => {
  const { l, client } = await serve({ deadlines: { setupIdleMs: 3000 } });
  try {
    const holder = await connectChannel('127.0.0.1', l.port, client);
    holder.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'ot', session: 'ab'.repeat(16) });
    await holder.recv();
    const t0 = Date.now();
    assert.equal(await l.pool.drain(300), false);
    assert.ok(Date.now() - t0 < 1500);
    holder.close();
  } finally {
    await l.close();
  }
});

test('per-client budget (AUTH past it) and rate (BUSY with the wait until the next token)', () => {
  let now = 0;
  const b = new ClientBudget({ queries: 3, perMinute: 2 }, () => now);
  b.take('ip:a');
  b.take('ip:a');
  assert.throws(
    () => b.take('ip:a'),
    (e: PiError) => e.code === 'BUSY' && e.retryMs! > 29_000 && e.retryMs! <= 30_000,
  );
  b.take('ip:b'); // another client is not affected
  now += 30_000;
  b.take('ip:a');
  now += 120_000;
  assert.throws(
    () => b.take('ip:a'),
    (e: PiError) => e.code === 'AUTH' && /budget of 3 queries/.test(e.message),
  );
});

test('a client over its budget is told AUTH by the server; the budget is per identity', async () => {
  const { l, client } = await serve({ budget: { queries: 1 } });
  try {
    await runClient(await connectChannel('127.0.0.1', l.port, client), image);
    await assert.rejects(
      runClient(await connectChannel('127.0.0.1', l.port, client), image),
      (e: PeerError) => e.code === 'AUTH',
    );
  } finally {
    await l.close();
  }
});

test("retry waits: at least the server's hint and the backoff, at most maxWaitMs, with jitter", () => {
  assert.equal(
    retryWaitMs(1, 4000, {}, () => 0.5),
    4000,
  );
  assert.equal(
    retryWaitMs(3, undefined, { baseMs: 500 }, () => 0.5),
    2000,
  );
  assert.equal(
    retryWaitMs(30, undefined, { maxWaitMs: 10_000 }, () => 0.5),
    10_000,
  );
  assert.equal(
    retryWaitMs(1, 1000, {}, () => 0),
    750,
  );
  assert.equal(
    retryWaitMs(1, 1000, {}, () => 1),
    1250,
  );
});
