// The web server without a browser: a Node WebSocket client (the `ws` package) on the WSS endpoint runs a session
// with the TCP clients' session code and gets their logits; the Origin check, the frame limit before the hello, the
// session cap shared with TCP clients, the static routes and their Content-Security-Policy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { WebSocket } from 'ws';
import { buildNetwork, specFor } from '../../../src/models/index.js';
import { manualSeed } from '../../../src/engine/index.js';
import { compilePlan } from '../../../src/pi/node/compile.js';
import type { ServerModel } from '../../../src/pi/plan.js';
import { HELLO_MAX_BYTES, runClient } from '../../../src/pi/protocol.js';
import { servePi, SessionPool, type PiServer } from '../../../src/pi/node/serve.js';
import { CSP, serveWeb, WS_PATH, type WebServer } from '../../../src/pi/node/web/server.js';
import { WsChannel, type WebSocketLike } from '../../../src/pi/transport/ws.js';
import { connectChannel } from '../../../src/pi/node/transport/tcp.js';
import type { PiError } from '../../../src/pi/wire.js';
import { identity, pinned, serverSecurity } from '../helpers/tls.js';

let model: ServerModel, pool: SessionPool, tcp: PiServer, web: WebServer, cert: string;
const errors: string[] = [],
  refused: string[] = [];
const image = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i * 1.7) * 2);

before(async () => {
  manualSeed(3);
  const net = buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10 })).eval();
  model = compilePlan(net);
  net.dispose();
  const S = await identity('web-server-node');
  cert = S.cert;
  pool = new SessionPool(model, { maxSessions: 1 });
  tcp = await servePi(model, { port: 0, security: serverSecurity(S), pool, onError: (e) => errors.push(e.message) });
  web = await serveWeb({
    port: 0,
    tls: { cert: S.cert, key: S.key },
    pool,
    preprocess: 'he',
    relu: 'gc',
    onError: (e) => errors.push(e.message),
    onRefused: (w) => refused.push(w),
  });
});

after(async () => {
  await web?.close();
  await tcp?.close();
  model?.dispose();
});

function openWs(origin: string | null): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${web.port}${WS_PATH}`, { ca: cert, ...(origin ? { origin } : {}) });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

const ownOrigin = () => `https://127.0.0.1:${web.port}`;
const wsChannel = (ws: WebSocket) => new WsChannel(ws as unknown as WebSocketLike, { name: 'node ws client' });

test('a WebSocket session gives the logits of a TCP session (same server, same pool)', async () => {
  const viaWs = await runClient(wsChannel(await openWs(ownOrigin())), image, { relu: 'gc' });
  const viaTcp = await runClient(
    await connectChannel('127.0.0.1', tcp.port, pinned(await identity('web-server-node'))),
    image,
    { relu: 'gc' },
  );
  // equal up to the HE linear layers' error (each output may carry +-1 before truncation, docs/pi-he.md): fresh coins
  const tol = 2 ** -8;
  viaWs.logits.forEach((v, i) =>
    assert.ok(Math.abs(v - viaTcp.logits[i]!) < tol, `logit ${i}: ${v} vs ${viaTcp.logits[i]}`),
  );
  assert.ok(viaWs.client.phases.offline.bytesSent > 1000);
});

test("the upgrade is refused without the server's own origin", async () => {
  for (const origin of ['https://evil.example:443', `http://127.0.0.1:${web.port}`, null]) {
    await assert.rejects(openWs(origin), /HTTP 403/, String(origin));
  }
  assert.ok(refused.some((r) => r.includes('origin https://evil.example:443')));
  assert.equal(web.connections, 0);
});

test('a frame above the limit before the hello fails the session with LIMIT', async () => {
  const n = errors.length;
  const ws = await openWs(ownOrigin());
  const closed = new Promise((r) => ws.once('close', r));
  const big = HELLO_MAX_BYTES + 1;
  ws.send(Uint8Array.from([big >>> 24, (big >>> 16) & 255, (big >>> 8) & 255, big & 255]));
  await closed;
  for (let i = 0; i < 100 && errors.length === n; i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(
    errors.slice(n).join('\n'),
    new RegExp(`frame of ${big} bytes exceeds the limit of ${HELLO_MAX_BYTES} bytes before the hello`),
  );
});

test('the session cap is shared: with one slot, a TCP and a WebSocket client at once, one is BUSY', async () => {
  const results = await Promise.allSettled([
    openWs(ownOrigin()).then((ws) => runClient(wsChannel(ws), image, { relu: 'gc' })),
    identity('web-server-node')
      .then((S) => connectChannel('127.0.0.1', tcp.port, pinned(S)))
      .then((ch) => runClient(ch, image, { relu: 'gc' })),
  ]);
  const busy = results.filter((r) => r.status === 'rejected' && (r.reason as PiError).code === 'BUSY');
  assert.equal(
    results.filter((r) => r.status === 'fulfilled').length,
    1,
    JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))),
  );
  assert.equal(busy.length, 1);
});

function get(
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: web.port, path, method, ca: cert }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('static routes: the page, the model info, 404 and 405; every response carries the CSP', async () => {
  const page = await get('/');
  assert.equal(page.status, 200);
  assert.match(page.body, /<script type="module" src="\/app\.js" integrity="sha384-[A-Za-z0-9+/=]+">/);
  const info = await get('/model.json');
  const j = JSON.parse(info.body) as { input: { shape: number[] }; classes: number; digest: string; relu: string };
  assert.deepEqual(j.input.shape, [3, 8, 8]);
  assert.equal(j.classes, 10);
  assert.equal(j.digest, model.plan.digest);
  assert.equal(j.relu, 'gc');
  assert.equal(
    (j as unknown as { testHooks: boolean }).testHooks,
    false,
    'a server without test hooks: the page ignores ?seed=',
  );
  assert.equal((await get('/nope.js')).status, 404);
  assert.equal((await get('/', 'POST')).status, 405);
  for (const r of [page, info]) {
    assert.equal(r.headers['content-security-policy'], CSP);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  assert.match(CSP, /default-src 'none'/);
  assert.doesNotMatch(CSP, /'unsafe-inline'|'unsafe-eval'|\*/);
});
