// Serving sessions: a pool that admits sessions up to a cap and tracks the live ones, shared by every medium the server
// listens on (TCP/TLS here, WebSocket in web/server.ts), so CLI and browser clients count against one cap. Node only.
import type { Channel } from '../transport/channel.js';
import { listenTcp, type ServerSecurity, type TcpListener } from './transport/tcp.js';
import { shapeChannel, type LinkProfile } from '../transport/shaping.js';
import type { ServerModel } from '../plan.js';
import type { ServerRandomness } from '../random.js';
import { modelFingerprint } from '../linear/dealer/link.js';
import {
  DEFAULT_DEADLINES, HELLO_MAX_BYTES, limitsFor, serveClient,
  type PartyReport, type ServerSessionOptions, type SessionHooks, type SessionState,
} from '../protocol.js';

export interface PoolOptions extends ServerSessionOptions {
  /** Sessions past the hello at once; more are refused with BUSY (default 4). */
  maxSessions?: number;
  onSession?: (r: PartyReport, ch: Channel) => void;
  /** Shapes what the server receives from each client as over this link (benchmarks; null or absent: no shaping). */
  link?: LinkProfile | null;
  /** Each session's coins (tests fix them per session); default `random`, else the system CSPRNG. */
  randomFor?: () => ServerRandomness;
}

export const DEFAULT_MAX_SESSIONS = 4;
export const DEFAULT_MAX_PENDING = 64;

/** The sessions of one served model: admission (BUSY past the cap) and the live sessions of every medium. */
export class SessionPool {
  private readonly live = new Set<SessionState>();
  private running = 0;
  readonly maxSessions: number;
  constructor(readonly model: ServerModel, readonly options: PoolOptions) {
    const o = options;
    if (o.dealer) modelFingerprint(model); // once, before serving (it applies every layer)
    this.maxSessions = o.maxSessions ?? DEFAULT_MAX_SESSIONS;
  }
  private admit = () => {
    if (this.running >= this.maxSessions) return null;
    this.running++;
    let done = false;
    return () => { if (!done) { done = true; this.running--; } };
  };
  /** Sessions in progress (including connections still in their hello). */
  sessions(): SessionState[] {
    return [...this.live];
  }
  /** Serves one session on `ch` (the caller closes the channel); throws what serveClient throws. */
  async run(ch: Channel): Promise<void> {
    let st: SessionState | null = null;
    const hooks: SessionHooks = { ...this.options.hooks, onStart: (s) => { st = s; this.live.add(s); this.options.hooks?.onStart?.(s); } };
    try {
      const random = this.options.randomFor?.() ?? this.options.random;
      const r = await serveClient(shapeChannel(ch, this.options.link ?? null), this.model, { ...this.options, hooks, admit: this.admit, ...(random ? { random } : {}) });
      this.options.onSession?.(r, ch);
    } finally {
      if (st) this.live.delete(st);
    }
  }
}

export interface ServeOptions extends PoolOptions {
  port: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** TLS (certificate and key), or plain TCP only when `{ insecure: true }` is given. */
  security: ServerSecurity;
  /** Connections that have not yet sent their hello (default 64); more are closed at once. */
  maxPending?: number;
  onError?: (e: Error, ch: Channel) => void;
  /** A connection refused before it became a session (TLS handshake failed, too many connections). */
  onRefused?: (why: string) => void;
  /** The pool to serve from (another listener's, to share its session cap); a new one when absent. */
  pool?: SessionPool;
}

export interface PiServer extends TcpListener {
  /** Sessions in progress on every medium of the pool (including connections still in their hello). */
  sessions(): SessionState[];
  readonly pool: SessionPool;
}

/** Serves clients concurrently over TLS (or TCP); a failing session is reported and closed, the listener goes on. */
export async function servePi(model: ServerModel, o: ServeOptions): Promise<PiServer> {
  const pool = o.pool ?? new SessionPool(model, o);
  const maxPending = o.maxPending ?? DEFAULT_MAX_PENDING;
  const dl = { ...DEFAULT_DEADLINES, ...o.deadlines };
  const l = await listenTcp({
    port: o.port, host: o.host ?? '127.0.0.1', ...('tls' in o.security ? { tls: o.security.tls } : {}),
    handshakeMs: dl.helloMs, maxConnections: pool.maxSessions + maxPending, onError: o.onError, onRefused: o.onRefused,
    limits: limitsFor(HELLO_MAX_BYTES, 'before the hello'),
  }, (ch) => pool.run(ch));
  return Object.assign(l, { sessions: () => pool.sessions(), pool });
}
