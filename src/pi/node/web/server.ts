// `deepreduce pi serve --web`: an HTTPS server (the server's own certificate) that serves the browser client (the page
// and its bundle from dist/web), the public model info, a small gallery of test images, and a WSS endpoint (/pi) where
// each WebSocket connection is one PI session run by the same pool (serve.ts SessionPool) as the TCP/TLS clients: the
// same session code, session cap, frame limits, deadlines and idle timeout. The WebSocket upgrade must come from an
// allowed Origin (the server's own https origins by default), so another site's page cannot drive a session from a
// visitor's browser. Every response carries a Content-Security-Policy that allows only this origin.
import { createServer, type Server } from 'node:https';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { PNG } from 'pngjs';
import { loadDataset, checkDatasetName } from '../../../data/index.js';
import type { PublicPlan } from '../../plan.js';
import type { WebModelInfo } from '../../web/info.js';
import type { SessionPool } from '../serve.js';
import type { SessionState } from '../../protocol.js';
import { DEFAULT_DEADLINES, HELLO_MAX_BYTES, limitsFor } from '../../protocol.js';
import { DEFAULT_MAX_PENDING, DEFAULT_MAX_PER_ADDRESS } from '../serve.js';
import { WS_CHUNK, WsChannel, type WebSocketLike } from '../../transport/ws.js';
import type { Channel } from '../../transport/channel.js';
import { AddressCount, refuseFast, type TlsServerConfig } from '../transport/tcp.js';
import type { ConnectRate } from '../transport/connectrate.js';

/** The WebSocket endpoint's path. */
export const WS_PATH = '/pi';

/** Only this origin: scripts, styles, images, WebSocket; WebAssembly compiled from bytes (the HE and GC kernels). */
export const CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.png': 'image/png',
};

export interface GalleryImage {
  png: Uint8Array;
  label: number;
}

/** The first `count` test images of a dataset as PNG (8-bit grey or RGB, the dataset's native size). */
export function datasetGallery(name: string, count: number, dir?: string): GalleryImage[] {
  const ds = loadDataset(checkDatasetName(name), 'test', dir ? { dir } : {});
  const out: GalleryImage[] = [];
  const hw = ds.h * ds.w;
  for (let i = 0; i < Math.min(count, ds.n); i++) {
    const png = new PNG({ width: ds.w, height: ds.h });
    const img = ds.images.subarray(i * ds.c * hw, (i + 1) * ds.c * hw);
    for (let p = 0; p < hw; p++) {
      for (let k = 0; k < 3; k++) png.data[4 * p + k] = img[Math.min(k, ds.c - 1) * hw + p]!;
      png.data[4 * p + 3] = 255;
    }
    out.push({ png: new Uint8Array(PNG.sync.write(png, { colorType: ds.c === 1 ? 0 : 2 })), label: ds.labels[i]! });
  }
  return out;
}

export interface WebOptions {
  port: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  tls: TlsServerConfig;
  pool: SessionPool;
  /** The protocols the page should ask for. */
  preprocess: string;
  relu: string;
  /** The bundled page (default dist/web of this package). */
  root?: string;
  gallery?: GalleryImage[];
  /** Origins allowed to open a session besides https://127.0.0.1:PORT, https://localhost:PORT and https://HOST:PORT. */
  origins?: string[];
  /** Test servers only: let the page honour ?seed= (fixed client coins, not private) and ?craft= (a crafted client). */
  testHooks?: boolean;
  /** WebSocket connections before their hello (default 64); more are refused (503). */
  maxPending?: number;
  /** WebSocket connections from one address at once (default 32); more are refused (503). */
  maxPerAddress?: number;
  /** New connections per address, checked before the TLS handshake (share the TLS listener's: one budget). */
  connectRate?: ConnectRate;
  onError?: (e: Error, ch: Channel) => void;
  onRefused?: (why: string) => void;
}

export interface WebServer {
  readonly port: number;
  /** The served page's SHA-256 and the SRI hashes of its code (also at /integrity.json). */
  readonly integrity: { index: string; files: Record<string, string> };
  /** https://HOST:PORT/ */
  readonly url: string;
  readonly server: Server;
  /** Sessions in progress on every medium of the pool. */
  sessions(): SessionState[];
  /** Open WebSocket connections. */
  readonly connections: number;
  close(): Promise<void>;
}

/** The bundle's folder: dist/web beside this module's dist/src/pi/web. */
export const defaultWebRoot = (): string => join(new URL('.', import.meta.url).pathname, '..', '..', '..', '..', 'web');

function loadStatic(root: string): Map<string, { body: Uint8Array; type: string }> {
  if (!existsSync(join(root, 'index.html')) || !existsSync(join(root, 'app.js'))) {
    throw new Error(
      `${root}: the browser client is not built (no index.html / app.js); run 'npm run build' (scripts/setup.sh bundles it)`,
    );
  }
  const files = new Map<string, { body: Uint8Array; type: string }>();
  for (const f of readdirSync(root)) {
    const type = TYPES[extname(f)];
    if (type) files.set(`/${f}`, { body: readFileSync(join(root, f)), type });
  }
  const index = files.get('/index.html')!;
  files.set('/index.html', {
    ...index,
    body: new TextEncoder().encode(withIntegrity(new TextDecoder().decode(index.body), files)),
  });
  files.set('/', files.get('/index.html')!);
  return files;
}

/** Subresource Integrity value (sha384, base64) of some bytes. */
export const sriHash = (b: Uint8Array): string => `sha384-${createHash('sha384').update(b).digest('base64')}`;

/**
 * The page with an `integrity` attribute on each script and style sheet it loads from this server: the browser then
 * runs them only if they hash to what the page says, so the page's one SHA-256 (printed at start, /integrity.json)
 * pins all of its code (docs/pi-web.md, "What the page trusts").
 */
export function withIntegrity(html: string, files: Map<string, { body: Uint8Array }>): string {
  return html.replace(
    /<(script|link)\b([^>]*?)\s(src|href)="(\/[^"]+)"([^>]*)>/g,
    (tag, el: string, pre: string, attr: string, path: string, post: string) => {
      const f = files.get(path);
      if (!f || /integrity=/.test(tag)) return tag;
      return `<${el}${pre} ${attr}="${path}" integrity="${sriHash(f.body)}"${post}>`;
    },
  );
}

/** What pins the page: the SHA-256 of the served index.html and the SRI hash of every file it loads. */
export function pageIntegrity(files: Map<string, { body: Uint8Array }>): {
  index: string;
  files: Record<string, string>;
} {
  const out: Record<string, string> = {};
  for (const [path, f] of files) if (/\.(js|css)$/.test(path)) out[path] = sriHash(f.body);
  return { index: `sha256-${createHash('sha256').update(files.get('/index.html')!.body).digest('hex')}`, files: out };
}

const publicInfo = (plan: PublicPlan, o: WebOptions): WebModelInfo => ({
  arch: plan.arch,
  input: { shape: plan.ops[0]!.shape, ...plan.input },
  classes: plan.ops[plan.ops.length - 1]!.size,
  relus: plan.relus,
  culledSites: plan.culledSites,
  digest: plan.digest,
  preprocess: o.preprocess,
  relu: o.relu,
  gallery: (o.gallery ?? []).map((g, i) => ({ url: `/gallery/${i}.png`, label: g.label })),
  testHooks: o.testHooks ?? false,
});

export async function serveWeb(o: WebOptions): Promise<WebServer> {
  const host = o.host ?? '127.0.0.1';
  const files = loadStatic(o.root ?? defaultWebRoot());
  const maxOpen = o.pool.maxSessions + (o.maxPending ?? DEFAULT_MAX_PENDING);
  const dl = { ...DEFAULT_DEADLINES, ...o.pool.options.deadlines };
  const onRefused = o.onRefused ?? (() => {});
  const onError = o.onError ?? ((e, ch) => process.stderr.write(`[pi] ${ch.name}: ${e.message}\n`));
  files.set('/model.json', {
    body: new TextEncoder().encode(JSON.stringify(publicInfo(o.pool.model.plan, o))),
    type: TYPES['.json']!,
  });
  (o.gallery ?? []).forEach((g, i) => files.set(`/gallery/${i}.png`, { body: g.png, type: TYPES['.png']! }));
  const integrity = pageIntegrity(files);
  files.set('/integrity.json', {
    body: new TextEncoder().encode(`${JSON.stringify(integrity, null, 2)}\n`),
    type: TYPES['.json']!,
  });

  const headers = (type: string, length: number) => ({
    'Content-Type': type,
    'Content-Length': String(length),
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
  const send = (res: ServerResponse, status: number, type: string, body: Uint8Array | string, head = false) => {
    const b = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    res.writeHead(status, headers(type, b.byteLength));
    res.end(head ? undefined : b);
  };
  const server = createServer(
    { cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2', handshakeTimeout: dl.helloMs },
    (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        send(res, 405, TYPES['.txt']!, 'method not allowed\n');
        return;
      }
      const f = files.get(path);
      if (!f) {
        send(res, 404, TYPES['.txt']!, `not found: ${path.slice(0, 100)}\n`, req.method === 'HEAD');
        return;
      }
      send(res, 200, f.type, f.body, req.method === 'HEAD');
    },
  );
  if (o.connectRate) refuseFast(server, o.connectRate, onRefused);
  server.on('tlsClientError', (e) => onRefused(`TLS handshake failed: ${e.message}`));

  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_CHUNK, perMessageDeflate: false });
  let open = 0;
  const perAddress = new AddressCount(o.maxPerAddress ?? DEFAULT_MAX_PER_ADDRESS);
  let origins: Set<string> = new Set();
  const refuse = (socket: Duplex, status: number, why: string) => {
    onRefused(why);
    socket.end(
      `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : 'Service Unavailable'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH) return refuse(socket, 404, `WebSocket upgrade on ${String(path).slice(0, 100)}`);
    const origin = req.headers.origin;
    if (!origin || !origins.has(origin))
      return refuse(
        socket,
        403,
        `WebSocket upgrade from origin ${String(origin).slice(0, 100)} (allowed: ${[...origins].join(', ')})`,
      );
    if (open >= maxOpen) return refuse(socket, 503, `more than ${maxOpen} WebSocket connections`);
    const address = req.socket.remoteAddress ?? '?';
    const release = perAddress.take(address);
    if (!release) return refuse(socket, 503, `more than ${perAddress.max} WebSocket connections from ${address}`);
    // Counted until the socket closes, on every path: `ws` answers some upgrades itself (an invalid key: 400) and
    // never calls back; the close of the underlying socket always comes.
    open++;
    let counted = true;
    const uncount = () => {
      if (counted) {
        counted = false;
        open--;
        release();
      }
    };
    socket.once('close', uncount);
    // An upgrade that never completes (a client that stops mid-handshake) holds its count only until the hello deadline.
    const stall = setTimeout(() => socket.destroy(), dl.helloMs);
    stall.unref();
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      clearTimeout(stall);
      const ch = new WsChannel(ws as unknown as WebSocketLike, {
        name: `wss ${address}:${req.socket.remotePort}`,
        limits: limitsFor(HELLO_MAX_BYTES, 'before the hello'),
      });
      Promise.resolve()
        .then(() => o.pool.run(ch, { address, medium: 'wss' }))
        .catch((e) => onError(e instanceof Error ? e : new Error(String(e)), ch))
        .finally(() => {
          ch.close();
        });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`listen on ${host}:${o.port}: ${e.message}`)));
    server.listen(o.port, host, () => resolve());
  });
  server.on('error', (e) => process.stderr.write(`[pi] web listener on ${host}:${o.port}: ${e.message}\n`));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  origins = new Set([
    `https://${hostPart}:${port}`,
    `https://127.0.0.1:${port}`,
    `https://localhost:${port}`,
    ...(o.origins ?? []),
  ]);
  return {
    port,
    url: `https://${hostPart}:${port}/`,
    server,
    integrity,
    sessions: () => o.pool.sessions(),
    get connections() {
      return open;
    },
    close: () =>
      new Promise<void>((res) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}
