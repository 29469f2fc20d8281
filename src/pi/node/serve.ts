// Serving sessions: a pool that admits sessions up to a cap and tracks the live ones, shared by every medium the server
// listens on (TCP/TLS here, WebSocket in web/server.ts), so CLI and browser clients count against one cap. Node only.
// Admission (at the client's hello) also bounds the sessions per address and, optionally, the queries per client
// (its verified certificate, else its address); a refusal is BUSY with a retry hint (wire.ts) from the recent
// sessions' durations. Every session's end, whatever its outcome, is reported once (onEnd: the log line, the
// metrics, the audit log). drain() refuses new sessions and waits for the live ones (SIGTERM).
import type { Channel } from '../transport/channel.js';
import type { ConnectRate } from './transport/connectrate.js';
import { AddressCount, listenTcp, type ServerSecurity, type TcpListener } from './transport/tcp.js';
import { shapeChannel, type LinkProfile } from '../transport/shaping.js';
import { codeOf, PiError, type ErrorCode } from '../transport/errors.js';
import type { ServerModel } from '../plan.js';
import type { ServerRandomness } from '../random.js';
import { modelFingerprint } from '../linear/dealer/link.js';
import {
  DEFAULT_DEADLINES,
  HELLO_MAX_BYTES,
  limitsFor,
  serveClient,
  type PartyReport,
  type Phase,
  type ServerSessionOptions,
  type SessionHooks,
  type SessionState,
} from '../protocol.js';

/** Optional per-client limits: queries in all, and a rate (a bucket of `perMinute` refilled continuously). */
export interface ClientBudgetOptions {
  /** Sessions a client may start in the server's lifetime (past it: AUTH). */
  queries?: number;
  /** Sessions a client may start per minute (past it: BUSY with the wait until the next). */
  perMinute?: number;
}

/** Per-client budgets, keyed by the client's identity ('cert:SHA256' when verified, else 'ip:ADDRESS'). */
export class ClientBudget {
  private readonly used = new Map<string, number>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    readonly o: ClientBudgetOptions,
    private readonly now = () => Date.now(),
  ) {}
  /** Takes one session for `who`; throws AUTH (budget spent) or BUSY (rate, with the wait). */
  take(who: string): void {
    const used = this.used.get(who) ?? 0;
    if (this.o.queries !== undefined && used >= this.o.queries)
      throw new PiError('AUTH', `server: ${who} has used its budget of ${this.o.queries} queries`);
    if (this.o.perMinute !== undefined) {
      const rate = this.o.perMinute / 60_000,
        t = this.now();
      const b = this.buckets.get(who) ?? { tokens: this.o.perMinute, at: t };
      b.tokens = Math.min(this.o.perMinute, b.tokens + (t - b.at) * rate);
      b.at = t;
      this.buckets.set(who, b);
      if (b.tokens < 1)
        throw new PiError('BUSY', `server: ${who} exceeds its rate of ${this.o.perMinute} queries per minute`, {
          retryMs: Math.ceil((1 - b.tokens) / rate),
        });
      b.tokens -= 1;
    }
    this.used.set(who, used + 1);
  }
}

/** Where a session comes from, as its listener saw it. */
export interface ClientInfo {
  /** The remote address (IP). */
  address: string;
  medium: 'tls' | 'tcp' | 'wss';
  /** The verified client certificate's SHA-256, if any. */
  certificate?: string | null;
}

/** One line per session, whatever its outcome: the structured log, the metrics and the audit log take it. */
export interface SessionEnd {
  client: string;
  address: string;
  /** Whom budgets count against ('cert:…' or 'ip:…'). */
  identity: string;
  medium: ClientInfo['medium'];
  /** 'ok', or the error code the session ended with. */
  outcome: 'ok' | ErrorCode;
  /** The furthest phase reached ('hello': refused or failed before admission). */
  phase: Phase | 'hello';
  admitted: boolean;
  startedAt: string;
  ms: number;
  bytesSent: number;
  bytesRecv: number;
  /** Per-phase wall time and bytes (successful sessions). */
  phases?: PartyReport['phases'];
  memory?: PartyReport['memory'];
  /** The local error's message (failures); never sent to the client. */
  error?: string;
}

export interface PoolOptions extends ServerSessionOptions {
  /** Sessions past the hello at once; more are refused with BUSY (default 4). */
  maxSessions?: number;
  /** Sessions past the hello at once from one address (default: maxSessions, i.e. no bound of its own). */
  maxSessionsPerAddress?: number;
  /** Per-client query budget and rate (default: none). */
  budget?: ClientBudgetOptions;
  onSession?: (r: PartyReport, ch: Channel) => void;
  /** Every session's end (ok or failed, admitted or not). */
  onEnd?: (e: SessionEnd) => void;
  /** Shapes what the server receives from each client as over this link (benchmarks; null or absent: no shaping). */
  link?: LinkProfile | null;
  /** Each session's coins (tests fix them per session); default `random`, else the system CSPRNG. */
  randomFor?: () => ServerRandomness;
}

export const DEFAULT_MAX_SESSIONS = 4;
export const DEFAULT_MAX_PENDING = 64;
/** Connections (TCP, and WebSocket) from one address at once, before or after their hello. */
export const DEFAULT_MAX_PER_ADDRESS = 32;

/** The sessions of one served model: admission (BUSY past the cap) and the live sessions of every medium. */
export class SessionPool {
  private readonly live = new Set<SessionState>();
  private running = 0;
  private readonly perAddress: AddressCount;
  private readonly budget: ClientBudget | null;
  /** Recent admitted sessions' mean duration (ms), for BUSY's retry hint. */
  private meanMs = 0;
  private draining = false;
  private drained: (() => void) | null = null;
  readonly maxSessions: number;
  readonly maxPerAddress: number;
  constructor(
    readonly model: ServerModel,
    readonly options: PoolOptions,
  ) {
    const o = options;
    if (o.dealer) modelFingerprint(model); // once, before serving (it applies every layer)
    this.maxSessions = o.maxSessions ?? DEFAULT_MAX_SESSIONS;
    // Unbounded per address by default (clients behind one NAT, tests on loopback); a server on an open network sets it
    // below the cap so that one address alone cannot hold every slot (hello-only sessions, bench/soak.ts).
    this.maxPerAddress = o.maxSessionsPerAddress ?? this.maxSessions;
    this.perAddress = new AddressCount(this.maxPerAddress);
    this.budget =
      o.budget && (o.budget.queries !== undefined || o.budget.perMinute !== undefined)
        ? new ClientBudget(o.budget)
        : null;
  }

  /** The wait a BUSY refusal suggests: a session slot frees about every mean duration / cap. */
  retryHintMs(): number {
    const per = this.meanMs ? this.meanMs / this.maxSessions : 1000;
    return Math.round(Math.min(30_000, Math.max(250, per)));
  }

  private admitter(info: ClientInfo, identity: string, onAdmit: () => void) {
    return () => {
      if (this.draining) return null;
      if (this.running >= this.maxSessions) return null;
      if (this.perAddress.count(info.address) >= this.maxPerAddress) return null;
      this.budget?.take(identity); // throws AUTH / BUSY
      this.running++;
      const release = this.perAddress.take(info.address)!;
      onAdmit();
      let done = false;
      return () => {
        if (done) return;
        done = true;
        this.running--;
        release();
        if (this.draining && this.running === 0) this.drained?.();
      };
    };
  }

  /** Sessions in progress (including connections still in their hello). */
  sessions(): SessionState[] {
    return [...this.live];
  }

  /** Sessions admitted and running now. */
  get admitted(): number {
    return this.running;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Refuses new sessions (BUSY) from now on; resolves once no admitted session runs, or after `ms` (false then). */
  drain(ms: number): Promise<boolean> {
    this.draining = true;
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.drained = () => {
        clearTimeout(t);
        resolve(true);
      };
    });
  }

  /** Serves one session on `ch` (the caller closes the channel); throws what serveClient throws. */
  async run(ch: Channel, info: ClientInfo = { address: '?', medium: 'tcp' }): Promise<void> {
    let st: SessionState | null = null;
    let admitted = false;
    const identity = info.certificate ? `cert:${info.certificate}` : `ip:${info.address}`;
    const t0 = Date.now();
    const hooks: SessionHooks = {
      ...this.options.hooks,
      onStart: (s) => {
        st = s;
        this.live.add(s);
        this.options.hooks?.onStart?.(s);
      },
    };
    const end = (e: Partial<SessionEnd> & Pick<SessionEnd, 'outcome'>) => {
      const s = ch.stats();
      this.options.onEnd?.({
        client: ch.name,
        address: info.address,
        identity,
        medium: info.medium,
        phase: (st as SessionState | null)?.phase ?? 'hello',
        admitted,
        startedAt: new Date(t0).toISOString(),
        ms: Date.now() - t0,
        bytesSent: s.bytesSent,
        bytesRecv: s.bytesRecv,
        ...e,
      });
    };
    try {
      const random = this.options.randomFor?.() ?? this.options.random;
      const admit = this.admitter(info, identity, () => {
        admitted = true;
      });
      const r = await serveClient(shapeChannel(ch, this.options.link ?? null), this.model, {
        ...this.options,
        hooks,
        admit,
        retryHintMs: () => this.retryHintMs(),
        ...(random ? { random } : {}),
      });
      const ms = Date.now() - t0;
      this.meanMs = this.meanMs ? 0.8 * this.meanMs + 0.2 * ms : ms;
      this.options.onSession?.(r, ch);
      end({ outcome: 'ok', phases: r.phases, memory: r.memory });
    } catch (e) {
      end({ outcome: codeOf(e), error: (e as Error).message });
      throw e;
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
  /** Connections from one address at once (default 32); more are closed at once. */
  maxPerAddress?: number;
  /** New connections per address, checked before the TLS handshake. */
  connectRate?: ConnectRate;
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
  const dl = { ...DEFAULT_DEADLINES, ...(o.pool ? o.pool.options.deadlines : o.deadlines) };
  const tls = 'tls' in o.security;
  const l = await listenTcp(
    {
      port: o.port,
      host: o.host ?? '127.0.0.1',
      ...('tls' in o.security ? { tls: o.security.tls } : {}),
      handshakeMs: dl.helloMs,
      maxConnections: pool.maxSessions + maxPending,
      maxPerAddress: o.maxPerAddress ?? DEFAULT_MAX_PER_ADDRESS,
      ...(o.connectRate ? { connectRate: o.connectRate } : {}),
      onError: o.onError,
      onRefused: o.onRefused,
      limits: limitsFor(HELLO_MAX_BYTES, 'before the hello'),
    },
    (ch) =>
      pool.run(ch, {
        address: ch.socket.remoteAddress ?? '?',
        medium: tls ? 'tls' : 'tcp',
        certificate: ch.peer?.verified ? ch.peer.fingerprint : null,
      }),
  );
  return Object.assign(l, { sessions: () => pool.sessions(), pool });
}
