// Channels over TCP and TLS (Node): the shared frame reader (channel.ts) on a socket's byte stream. TLS is TLS 1.3
// only (AES-GCM / ChaCha20-Poly1305); a client verifies the server against a CA / certificate file or a pinned
// SHA-256 fingerprint, and a listener may ask for client certificates (the dealer authenticates the server so).
// Plain TCP exists for --insecure runs and in-process benchmarks; the callers decide, loudly (cli/pi.ts).
import { createServer, connect, type Socket, type Server } from 'node:net';
import * as tls from 'node:tls';
import { ChannelBase, framePrefix, type Channel, type ChannelOptions } from '../../transport/channel.js';
import { PiError } from '../../transport/errors.js';
import type { ConnectRate } from './connectrate.js';
import { certFingerprint, certValidityProblem, checkPin } from './tls.js';

/** Who is on the other end of a channel, as TLS established it. */
export interface PeerIdentity {
  /** SHA-256 of the peer's certificate (DER), lowercase hex; null without a certificate (or plain TCP). */
  fingerprint: string | null;
  /** The peer's certificate chains to a trusted CA / certificate, or its fingerprint is pinned. */
  verified: boolean;
}

export class StreamChannel extends ChannelBase {
  readonly name: string;
  /** The peer's TLS identity (null on plain TCP). */
  readonly peer: PeerIdentity | null;

  constructor(
    readonly socket: Socket,
    opts: ChannelOptions & { peer?: PeerIdentity } = {},
  ) {
    super(opts);
    this.name =
      opts.name ?? `${socket instanceof tls.TLSSocket ? 'tls' : 'tcp'} ${socket.remoteAddress}:${socket.remotePort}`;
    this.peer = opts.peer ?? null;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receiveBytes(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => this.onEnd());
    socket.on('error', (e) => this.fail(new PiError('ABORTED', `${this.name}: socket error: ${e.message}`), true));
  }

  private onEnd(): void {
    const t = this.reader.truncation();
    // A cut frame is the peer's malformed input; a clean close means the other party left.
    this.fail(
      t
        ? new PiError('MALFORMED', `${this.name}: ${t}`)
        : new PiError('ABORTED', `${this.name}: peer closed the connection`),
      true,
    );
  }

  protected write(data: Uint8Array): void {
    this.socket.cork();
    this.socket.write(framePrefix(data.byteLength));
    if (data.byteLength > 0) this.socket.write(data);
    this.socket.uncork();
  }

  protected override onFatalInput(): void {
    this.socket.pause();
  }

  protected shutdown(): void {
    // Send what is queued (a last error frame), then close once the peer has closed its side too, dropping what it
    // still sends: closing at once would answer the messages it already has in flight (a client runs a layer ahead)
    // with a reset, which can destroy the error frame before the peer reads it. A peer that never reads or never
    // closes does not keep the socket beyond 2 s.
    const s = this.socket;
    const kill = setTimeout(() => s.destroy(), 2000);
    kill.unref();
    const done = () => {
      clearTimeout(kill);
      s.destroy();
    };
    if (s.readableEnded) {
      s.end(done);
      return;
    }
    s.removeAllListeners('data');
    s.on('data', () => {});
    s.once('end', () => s.end(done));
    s.end();
    s.resume();
  }

  protected drained(): Promise<void> {
    const s = this.socket;
    if (!s.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        s.off('drain', ok);
        s.off('close', closed);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => done();
      const closed = () => done(new Error(`${this.name}: connection closed before queued data was sent`));
      s.on('drain', ok);
      s.on('close', closed);
    });
  }

  protected outstanding(): number {
    return this.socket.writableLength;
  }
}

// ------------------------------------------------------------------------------------------------ connecting

export interface TlsClientConfig {
  /** PEM: CA certificate(s) or the server's own (self-signed) certificate to verify the server against. */
  ca?: string;
  /** SHA-256 fingerprint of the server's certificate (64 hex digits, ':' allowed). */
  pin?: string;
  /** This party's certificate and key (PEM), presented as a TLS client certificate (the server to the dealer). */
  cert?: string;
  key?: string;
  /** Name checked against the certificate with `ca` (default: the host connected to). */
  servername?: string;
}

/** How a party connects: TLS with a verified server, or plain TCP only when asked for by name. */
export type ClientSecurity = { tls: TlsClientConfig } | { insecure: true };

export interface ConnectOptions extends ChannelOptions {
  /** Deadline for the TCP connect and the TLS handshake (default 10 s). */
  timeoutMs?: number;
}

function withTimeout<T extends Socket>(s: T, ms: number, what: string, reject: (e: Error) => void): NodeJS.Timeout {
  const t = setTimeout(() => {
    s.destroy();
    reject(new PiError('TIMEOUT', `${what}: no connection within ${(ms / 1e3).toFixed(1)} s`));
  }, ms);
  t.unref();
  return t;
}

/** Connects over plain TCP; rejects with an error naming host:port. */
export function connectTcp(host: string, port: number, opts: ConnectOptions = {}): Promise<StreamChannel> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const timer = withTimeout(s, opts.timeoutMs ?? 10000, `connect ${host}:${port}`, reject);
    const onErr = (e: Error) => {
      clearTimeout(timer);
      reject(new Error(`connect ${host}:${port}: ${e.message}`));
    };
    s.once('error', onErr);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', onErr);
      resolve(new StreamChannel(s, { ...opts, name: opts.name ?? `tcp ${host}:${port}` }));
    });
  });
}

/**
 * Connects over TLS 1.3 and verifies the server: against `ca` (chain and name), and/or its certificate's SHA-256
 * against `pin`. Without either it refuses to connect. Nothing is sent before the server is verified.
 */
export function connectTls(
  host: string,
  port: number,
  cfg: TlsClientConfig,
  opts: ConnectOptions = {},
): Promise<StreamChannel> {
  const what = `connect ${host}:${port}`;
  if (!cfg.ca && !cfg.pin) {
    return Promise.reject(
      new Error(
        `${what}: refusing TLS without a way to verify the server: give its certificate (--server-cert FILE) or its fingerprint (--pin SHA256)`,
      ),
    );
  }
  const pin = cfg.pin ? checkPin(cfg.pin, 'pin') : null;
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host,
      port,
      minVersion: 'TLSv1.3',
      ...(cfg.servername ? { servername: cfg.servername } : {}),
      ...(cfg.ca ? { ca: cfg.ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
      ...(cfg.cert && cfg.key ? { cert: cfg.cert, key: cfg.key } : {}),
    });
    const timer = withTimeout(s, opts.timeoutMs ?? 10000, what, reject);
    const onErr = (e: Error) => {
      clearTimeout(timer);
      const bad = /certificate|self.signed|unable to verify|Hostname|IP:|altnames/i.test(e.message);
      reject(
        bad
          ? new PiError(
              'AUTH',
              `${what}: the server's certificate is not trusted: ${e.message} (check --server-cert / --pin)`,
            )
          : new Error(`${what}: ${e.message}`),
      );
    };
    s.once('error', onErr);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.off('error', onErr);
      const raw = s.getPeerCertificate().raw;
      const fp = raw ? certFingerprint(raw) : null;
      if (pin && fp !== pin) {
        s.destroy();
        reject(
          new PiError(
            'AUTH',
            `${what}: the server's certificate has fingerprint ${fp ?? '(none)'}, not the pinned ${pin}`,
          ),
        );
        return;
      }
      const invalid = pin && raw ? certValidityProblem(raw) : null;
      if (invalid) {
        s.destroy();
        reject(new PiError('AUTH', `${what}: the server's pinned certificate is refused: ${invalid}`));
        return;
      }
      resolve(
        new StreamChannel(s, {
          ...opts,
          name: opts.name ?? `tls ${host}:${port}`,
          peer: { fingerprint: fp, verified: true },
        }),
      );
    });
  });
}

/** connectTls or connectTcp, as `sec` says. */
export function connectChannel(
  host: string,
  port: number,
  sec: ClientSecurity,
  opts: ConnectOptions = {},
): Promise<StreamChannel> {
  return 'tls' in sec ? connectTls(host, port, sec.tls, opts) : connectTcp(host, port, opts);
}

// ------------------------------------------------------------------------------------------------ listening

export interface TlsServerConfig {
  /** This party's certificate and key (PEM). */
  cert: string;
  key: string;
  /**
   * Ask connecting parties for a client certificate. Parties without one still connect (peer.verified false);
   * `ca` (PEM) and/or `pins` (SHA-256 fingerprints) say whose certificates count as verified.
   */
  clientAuth?: { ca?: string; pins?: string[] };
}

export type ServerSecurity = { tls: TlsServerConfig } | { insecure: true };

export interface TcpListener {
  readonly port: number;
  readonly server: Server;
  /** Connections open now (handshaking, or running their handler). */
  readonly connections: number;
  close(): Promise<void>;
}

export interface ListenOptions extends ChannelOptions {
  port: number;
  /** Listen address (default 127.0.0.1: exposing a party takes an explicit address). */
  host?: string;
  /** TLS; plain TCP when absent. */
  tls?: TlsServerConfig;
  /** TLS handshake deadline (default 10 s). */
  handshakeMs?: number;
  /** Open connections beyond this are closed at once (default 256). */
  maxConnections?: number;
  /** Open connections from one address beyond this are closed at once (default: maxConnections). */
  maxPerAddress?: number;
  /** New connections per address (a token bucket, checked before the TLS handshake); shared with other listeners
   *  of the same server so that one address has one budget. */
  connectRate?: ConnectRate;
  /** A handler that threw (default: stderr). The listener keeps serving. */
  onError?: (err: Error, ch: Channel) => void;
  /** A connection dropped before it became a channel (TLS handshake failed, too many connections). */
  onRefused?: (why: string) => void;
}

function peerIdentity(s: tls.TLSSocket, cfg: TlsServerConfig): PeerIdentity {
  const raw = s.getPeerCertificate()?.raw;
  const fingerprint = raw ? certFingerprint(raw) : null;
  const byCa = !!cfg.clientAuth?.ca && s.authorized;
  const byPin = !!fingerprint && !!cfg.clientAuth?.pins?.includes(fingerprint) && certValidityProblem(raw!) === null;
  return { fingerprint, verified: !!fingerprint && (byCa || byPin) };
}

/** Counts what each address holds (connections, sessions) against a bound; take() gives a release, or null when full. */
export class AddressCount {
  private readonly held = new Map<string, number>();
  constructor(readonly max: number) {}
  take(address: string | undefined): (() => void) | null {
    const a = address ?? '?',
      n = this.held.get(a) ?? 0;
    if (n >= this.max) return null;
    this.held.set(a, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const m = (this.held.get(a) ?? 1) - 1;
      if (m) this.held.set(a, m);
      else this.held.delete(a);
    };
  }
  count(address: string): number {
    return this.held.get(address) ?? 0;
  }
}

/**
 * Closes a new connection whose address has used up its connect rate before the server's own connection listeners see
 * it: they are wrapped, so the TLS server never starts (or reports) a handshake on it. Listeners added later must skip
 * destroyed sockets.
 */
export function refuseFast(server: Server, rate: ConnectRate, onRefused: (why: string) => void): void {
  const inner = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', function (this: Server, s: Socket) {
    if (!rate.take(s.remoteAddress)) {
      s.on('error', () => {});
      s.destroy();
      onRefused(`more than ${rate.perSecond} new connections per second from ${s.remoteAddress}`);
      return;
    }
    for (const f of inner) f.call(this, s);
  });
}

/**
 * Accepts connections (TLS when `opts.tls` is given) and runs `handler` for each, concurrently. A handler that
 * throws is reported to `onError` (default: stderr) and its channel is closed; the listener keeps serving.
 * `port` 0 picks an ephemeral port.
 */
export function listenTcp(
  opts: ListenOptions,
  handler: (ch: StreamChannel) => Promise<void> | void,
): Promise<TcpListener> {
  const onError = opts.onError ?? ((err, ch) => process.stderr.write(`[pi] ${ch.name}: ${err.message}\n`));
  const onRefused = opts.onRefused ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  const chOpts: ChannelOptions = {
    ...(opts.maxFrameBytes !== undefined ? { maxFrameBytes: opts.maxFrameBytes } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  };
  const run = (socket: Socket, peer?: PeerIdentity) => {
    const ch = new StreamChannel(socket, { ...chOpts, ...(peer ? { peer } : {}) });
    Promise.resolve()
      .then(() => handler(ch))
      .catch((e) => onError(e instanceof Error ? e : new Error(String(e)), ch))
      .finally(() => ch.close());
  };
  let server: Server;
  const cfg = opts.tls;
  if (cfg) {
    if (cfg.clientAuth?.pins) cfg.clientAuth.pins.forEach((p, i) => checkPin(p, `clientAuth.pins[${i}]`));
    const ts = tls.createServer(
      {
        cert: cfg.cert,
        key: cfg.key,
        minVersion: 'TLSv1.3',
        handshakeTimeout: opts.handshakeMs ?? 10000,
        ...(cfg.clientAuth
          ? { requestCert: true, rejectUnauthorized: false, ...(cfg.clientAuth.ca ? { ca: cfg.clientAuth.ca } : {}) }
          : {}),
      },
      (s) => run(s, peerIdentity(s, cfg)),
    );
    ts.on('tlsClientError', (e, s) => {
      s.destroy();
      onRefused(`TLS handshake failed: ${e.message}`);
    });
    server = ts;
  } else {
    server = createServer(); // run from the 'connection' handler below, after the per-address check
  }
  server.maxConnections = opts.maxConnections ?? 256;
  server.on('drop', (d?: { remoteAddress?: string }) =>
    onRefused(`more than ${server.maxConnections} connections (from ${d?.remoteAddress ?? '?'})`),
  );
  let open = 0;
  if (opts.connectRate) refuseFast(server, opts.connectRate, onRefused);
  const perAddress = new AddressCount(opts.maxPerAddress ?? server.maxConnections);
  // 'connection' comes before the TLS handshake: the count holds for every connection, handshaking or not.
  server.on('connection', (s: Socket) => {
    if (s.destroyed) return; // refused by the connect rate
    const release = perAddress.take(s.remoteAddress);
    if (!release) {
      onRefused(`more than ${perAddress.max} connections from ${s.remoteAddress}`);
      s.destroy();
      return;
    }
    open++;
    s.once('close', () => {
      open--;
      release();
    });
    if (!cfg) run(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`listen on ${host}:${opts.port}: ${e.message}`)));
    server.listen(opts.port, host, () => {
      server.on('error', (e) => process.stderr.write(`[pi] listener on ${host}:${opts.port}: ${e.message}\n`));
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.port;
      resolve({
        port,
        server,
        get connections() {
          return open;
        },
        close: () => new Promise<void>((res) => server.close(() => res())),
      });
    });
  });
}
