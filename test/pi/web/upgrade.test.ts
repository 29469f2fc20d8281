// Issue 32, finding 3: the WebSocket endpoint counts its connections exactly on every path. Upgrades that `ws`
// answers itself (an invalid Sec-WebSocket-Key: 400, no callback) once leaked the count until every valid upgrade got
// 503; 200 of them (allowed Origin), then a valid session must succeed and the count return to 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { WebSocket } from 'ws';
import { buildNetwork, specFor } from '../../../src/models/index.js';
import { manualSeed } from '../../../src/engine/index.js';
import { compilePlan } from '../../../src/pi/node/compile.js';
import type { ServerModel } from '../../../src/pi/plan.js';
import { runClient } from '../../../src/pi/protocol.js';
import { SessionPool } from '../../../src/pi/node/serve.js';
import { serveWeb, WS_PATH, type WebServer } from '../../../src/pi/node/web/server.js';
import { WsChannel, type WebSocketLike } from '../../../src/pi/transport/ws.js';
import { identity } from '../helpers/tls.js';

let model: ServerModel, web: WebServer, cert: string;
const image = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i * 1.7) * 2);

before(async () => {
  manualSeed(3);
  const net = buildNetwork(
    specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] }),
  ).eval();
  model = compilePlan(net);
  net.dispose();
  const S = await identity('web-upgrade');
  cert = S.cert;
  web = await serveWeb({
    port: 0,
    tls: { cert: S.cert, key: S.key },
    pool: new SessionPool(model, { maxSessions: 1 }),
    preprocess: 'he',
    relu: 'ot',
    onError: () => {},
  });
});

after(async () => {
  await web?.close();
  model?.dispose();
});

/** An upgrade request with the allowed Origin and the given key; resolves with the HTTP status. */
function upgrade(key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: web.port,
      path: WS_PATH,
      ca: cert,
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': key,
        Origin: `https://127.0.0.1:${web.port}`,
      },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('upgrade', (res, sock) => {
      sock.destroy();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}

test('200 upgrades with an invalid Sec-WebSocket-Key (400), then a valid WebSocket session succeeds; the count returns to 0', async () => {
  for (let i = 0; i < 200; i += 20) {
    const st = await Promise.all(Array.from({ length: 20 }, () => upgrade('not a key')));
    assert.ok(
      st.every((s) => s === 400),
      `statuses ${st.join(',')}`,
    );
  }
  for (let i = 0; i < 100 && web.connections; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(web.connections, 0, 'bad upgrades still counted');
  const ws = await new Promise<WebSocket>((resolve, reject) => {
    const w = new WebSocket(`wss://127.0.0.1:${web.port}${WS_PATH}`, {
      ca: cert,
      origin: `https://127.0.0.1:${web.port}`,
    });
    w.once('open', () => resolve(w));
    w.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    w.once('error', reject);
  });
  const r = await runClient(new WsChannel(ws as unknown as WebSocketLike, { name: 'node ws client' }), image);
  assert.equal(r.logits.length, 10);
  for (let i = 0; i < 200 && web.connections; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(web.connections, 0);
});

test('the served page pins its code: an integrity attribute (sha384) on each script and style sheet, listed at /integrity.json', async () => {
  const { createHash } = await import('node:crypto');
  const get = (path: string) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      request({ host: '127.0.0.1', port: web.port, path, ca: cert, agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts) }));
      })
        .on('error', reject)
        .end();
    });
  const page = (await get('/')).body.toString();
  const app = (await get('/app.js')).body,
    css = (await get('/style.css')).body;
  const sri = (b: Buffer) => `sha384-${createHash('sha384').update(b).digest('base64')}`;
  assert.match(
    page,
    new RegExp(`<script type="module" src="/app\\.js" integrity="${sri(app).replace(/[+/]/g, '\\$&')}">`),
  );
  assert.match(
    page,
    new RegExp(`<link rel="stylesheet" href="/style\\.css" integrity="${sri(css).replace(/[+/]/g, '\\$&')}">`),
  );
  const listed = JSON.parse((await get('/integrity.json')).body.toString()) as {
    index: string;
    files: Record<string, string>;
  };
  assert.equal(listed.files['/app.js'], sri(app));
  assert.equal(listed.index, `sha256-${createHash('sha256').update(page).digest('hex')}`);
  assert.deepEqual(listed, web.integrity);
});
