// The trusted dealer for `--preprocess dealer`: a THIRD party, separate from the server, that knows the model's
// weights M (it loads the model as the server does) and does not collude with the server. It has its own channel to
// each party of a session; per secret linear layer it draws s, sends s to the server, receives the client's mask c
// and returns M c - s to the client (preprocess.ts dealLayer). The server never sees c.
//
// Sessions: the client draws a random 16-byte session id and sends it to the server (in its hello) and to the dealer;
// the server sends the same id to the dealer. The dealer pairs the two connections with equal ids (whichever comes
// first waits up to `pairTimeoutMs`), checks that both use its plan (digest) and that the server has its weights
// (fingerprint), then serves the session. Hello (JSON, party -> dealer, first message on each connection):
//   { protocol: 'deepreduce-pi-dealer/2', role: 'server' | 'client', session: 32 hex digits, plan: digest,
//     weights: fingerprint (server only) }
// Only an AUTHENTICATED server may take the server role: over TLS the server presents its certificate as a TLS client
// certificate, which the dealer checks against the server's certificate file or pinned fingerprint (Dealer.listen);
// anyone else claiming the role is refused (AUTH). Otherwise a client could join as both roles, receive s and
// M c - s for masks c of its choice, and read the weights. The weights fingerprint goes only from the server to the
// dealer; errors to the parties carry codes only (wire.ts), never a digest or fingerprint.
// The dealer serves sessions concurrently; a failing session is reported and the dealer goes on.
import { channelPair, type Channel } from '../transport/channel.js';
import {
  connectTls,
  listenTcp,
  type StreamChannel,
  type TcpListener,
  type TlsClientConfig,
  type TlsServerConfig,
} from './transport/tcp.js';
import { systemRandom, type Random } from '../random.js';
import type { ServerModel } from '../plan.js';
import {
  checkSessionId,
  DEALER_PROTOCOL,
  HELLO_MAX_BYTES,
  SESSION_RE,
  limitsFor,
  modelFingerprint,
  type DealerHello,
  type DealerLink,
  type DealerRole,
} from '../linear/dealer/link.js';
import { dealLayer } from '../linear/dealer/preprocess.js';
import { linearShapes, type LinearShape } from '../linear/index.js';
import { guarded, malformed, PiError, recvJsonChecked, type ErrorCode } from '../wire.js';

export {
  checkSessionId,
  DEALER_PROTOCOL,
  joinDealer,
  modelFingerprint,
  type DealerLink,
  type DealerRole,
} from '../linear/dealer/link.js';

export interface DealerSessionInfo {
  session: string;
  layers: number;
  ms: number;
  /** Bytes the dealer sent to the server / client and received from the client. */
  toServer: number;
  toClient: number;
  fromClient: number;
  /** Peak bytes received unread / written unsent on the session's two links. */
  peakBufferedIn: number;
  peakBufferedOut: number;
}

export interface DealerOptions {
  /** How long a connection may take to send its hello (default 10 s). */
  helloMs?: number;
  /** How long a party waits for its counterpart with the same session id (default 30 s). */
  pairTimeoutMs?: number;
  /** A wait for a party's next bytes (default 60 s). */
  idleMs?: number;
  /** A paired session's whole run (default 600 s: the client's offline phase runs inside it). */
  sessionMs?: number;
  /** Sessions waiting or running at once; more are refused with BUSY (default 16). */
  maxSessions?: number;
  /** The dealer's coins (the s it draws); default the system CSPRNG. */
  random?: Random;
  onSession?: (info: DealerSessionInfo) => void;
  /** A failed connection or session (default: stderr). The dealer goes on serving. */
  onError?: (err: Error, ch: Channel) => void;
}

/** What the dealer knows of a connecting party before its hello. */
export interface DealerPeer {
  /** The party proved it is the server (a verified TLS client certificate, or an in-process link). */
  server: boolean;
}

interface Waiting {
  role: DealerRole;
  ch: Channel;
  /** Ends the wait: the session will not start (code for the party, details for the log). */
  drop: (code: ErrorCode, why: string) => void;
  /** The session this connection joined is over. */
  done: () => void;
}

export class Dealer {
  private readonly waiting = new Map<string, Waiting>();
  private readonly running = new Set<string>();
  /** Sessions that failed before both parties joined (recent ones), so that a late party is told at once. */
  private readonly failed = new Map<string, { code: ErrorCode; reason: string; at: number }>();
  private readonly pairTimeoutMs: number;
  private readonly helloMs: number;
  private readonly idleMs: number;
  private readonly sessionMs: number;
  private readonly maxSessions: number;
  private readonly random: Random;
  private readonly onError: (err: Error, ch: Channel) => void;
  private readonly shapes: LinearShape[];
  private readonly maxIn: number;

  constructor(
    readonly model: ServerModel,
    private readonly o: DealerOptions = {},
  ) {
    this.pairTimeoutMs = o.pairTimeoutMs ?? 30000;
    this.helloMs = o.helloMs ?? 10000;
    this.idleMs = o.idleMs ?? 60000;
    this.sessionMs = o.sessionMs ?? 600000;
    this.maxSessions = o.maxSessions ?? 16;
    this.random = o.random ?? systemRandom;
    this.onError = o.onError ?? ((err, ch) => process.stderr.write(`[pi dealer] ${ch.name}: ${err.message}\n`));
    this.shapes = linearShapes(model.plan);
    this.maxIn = Math.max(0, ...this.shapes.map((s) => 8 * s.inSize));
    modelFingerprint(model); // once, before serving (it applies every layer)
  }

  /** Sessions waiting for their second party / running now. */
  get pending(): number {
    return this.waiting.size;
  }
  get active(): number {
    return this.running.size;
  }

  /**
   * Serves one party's connection: reads its hello, pairs it with the other party's connection of the same
   * session, runs the session. Resolves when it is over; failures go to onError (reported once per session).
   */
  async accept(ch: Channel, peer: DealerPeer): Promise<void> {
    let hello: DealerHello, raw: Partial<DealerHello> | undefined;
    ch.setLimits({ ...limitsFor(HELLO_MAX_BYTES, 'before the hello'), idleMs: this.idleMs });
    const silent = setTimeout(
      () => ch.abort(new PiError('TIMEOUT', `no hello within ${(this.helloMs / 1e3).toFixed(1)} s`)),
      this.helloMs,
    );
    try {
      hello = await guarded(ch, 'dealer', async (c) =>
        this.checkHello((raw = await recvJsonChecked<DealerHello>(c, 'hello')), c.name, peer),
      );
    } catch (e) {
      this.onError(e as Error, ch);
      const id = raw?.session;
      // The counterpart of a rejected party fails at once instead of waiting for the pairing timeout.
      if (typeof id === 'string' && SESSION_RE.test(id) && !this.running.has(id))
        this.failSession(id, 'ABORTED', `the ${String(raw?.role).slice(0, 16)} was rejected: ${(e as Error).message}`);
      return;
    } finally {
      clearTimeout(silent);
    }
    const { session, role } = hello;
    const other = this.waiting.get(session),
      gone = this.failed.get(session);
    if (other?.role === role || gone || (!other && this.waiting.size + this.running.size >= this.maxSessions)) {
      this.failed.delete(session);
      const e = gone
        ? new PiError(gone.code, `session ${session}: ${gone.reason}`)
        : other
          ? new PiError('SESSION', `session ${session}: a ${role} already joined this session`)
          : new PiError('BUSY', `session ${session}: refused: ${this.maxSessions} sessions waiting or running`);
      await guarded(ch, 'dealer', () => Promise.reject(e)).catch((err: Error) => this.onError(err, ch));
      return;
    }
    if (!other) {
      // First of the pair: wait for the counterpart, then until the session is over (run by the second).
      const peerRole = role === 'server' ? 'client' : 'server';
      const failed = await new Promise<PiError | null>((done) => {
        const drop = (code: ErrorCode, why: string) => {
          if (this.waiting.get(session)?.ch !== ch) return;
          this.waiting.delete(session);
          clearTimeout(timer);
          this.failSession(session, code, why);
          done(new PiError(code, `session ${session}: ${why}`));
        };
        const timer = setTimeout(
          () =>
            drop(
              'SESSION',
              `no ${peerRole} joined within ${(this.pairTimeoutMs / 1e3).toFixed(1)} s (wrong or unknown session id, or the ${peerRole} uses another dealer)`,
            ),
          this.pairTimeoutMs,
        );
        this.waiting.set(session, {
          role,
          ch,
          drop,
          done: () => {
            clearTimeout(timer);
            done(null);
          },
        });
        // Read ahead while parked, so that a party that leaves is dropped at once; the session gets what was read.
        const recv = ch.recv.bind(ch),
          ahead: Promise<Uint8Array>[] = [];
        const readAhead = () => {
          const m = recv();
          ahead.push(m);
          m.then(
            () => {
              if (this.waiting.get(session)?.ch === ch) readAhead();
            },
            (e: Error) => drop('ABORTED', `the ${role} left before a ${peerRole} joined (${e.message})`),
          );
        };
        ch.recv = () => ahead.shift() ?? recv();
        readAhead();
      });
      if (failed) await guarded(ch, 'dealer', () => Promise.reject(failed)).catch((e: Error) => this.onError(e, ch));
      return;
    }
    this.waiting.delete(session);
    const [server, client] = role === 'server' ? [ch, other.ch] : [other.ch, ch];
    this.running.add(session);
    try {
      const info = await this.runSession(session, server, client);
      this.o.onSession?.(info);
    } catch (e) {
      this.onError(new Error(`session ${session}: ${(e as Error).message}`, { cause: e }), ch);
    } finally {
      this.running.delete(session);
      server.close();
      client.close();
      other.done();
    }
  }

  /** Ends a session that has not started: drops its parked party, or remembers why for a party still to come. */
  private failSession(session: string, code: ErrorCode, why: string): void {
    const w = this.waiting.get(session);
    if (w) {
      w.drop(code, why);
      return;
    }
    const now = Date.now();
    for (const [id, f] of this.failed) {
      if (now - f.at < 2 * this.pairTimeoutMs && this.failed.size < 10000) break;
      this.failed.delete(id);
    }
    this.failed.set(session, { code, reason: why, at: now });
  }

  private checkHello(h: DealerHello, what: string, peer: DealerPeer): DealerHello {
    if (!h || typeof h !== 'object' || h.protocol !== DEALER_PROTOCOL)
      throw new PiError(
        'PROTOCOL',
        `${what}: party speaks '${String(h?.protocol).slice(0, 40)}', expected '${DEALER_PROTOCOL}'`,
      );
    if (h.role !== 'server' && h.role !== 'client')
      throw malformed(`${what}: malformed hello: role ${JSON.stringify(h.role)?.slice(0, 40)}`);
    checkSessionId(h.session, `${what}: ${h.role} hello`);
    if (h.role === 'server' && !peer.server)
      throw new PiError(
        'AUTH',
        `${what}: a party without the server's certificate claimed the server role (session ${h.session})`,
      );
    if (this.running.has(h.session)) throw new PiError('SESSION', `${what}: session ${h.session} is already running`);
    const mine = this.model.plan.digest;
    if (h.plan !== mine)
      throw new PiError(
        'MISMATCH',
        `${what}: the ${h.role} uses plan ${String(h.plan).slice(0, 40)}, this dealer serves plan ${mine} (${this.model.plan.arch}); start the dealer on the server's model`,
      );
    if (h.role === 'server') {
      const fp = modelFingerprint(this.model);
      if (h.weights !== fp)
        throw new PiError(
          'MISMATCH',
          `${what}: the server's weights (fingerprint ${String(h.weights).slice(0, 40)}) differ from this dealer's (${fp}); start the dealer on the server's model`,
        );
    }
    return h;
  }

  private async runSession(session: string, server0: Channel, client0: Channel): Promise<DealerSessionInfo> {
    const t0 = performance.now(),
      s0 = server0.stats(),
      c0 = client0.stats();
    client0.setLimits(limitsFor(this.maxIn, 'in a session (from the client)'));
    server0.setLimits(limitsFor(0, 'in a session (from the server)'));
    const deadline = setTimeout(() => {
      const err = new PiError(
        'TIMEOUT',
        `session ${session} took longer than its deadline of ${(this.sessionMs / 1e3).toFixed(1)} s`,
      );
      server0.abort(err);
      client0.abort(err);
    }, this.sessionMs);
    // One guard per channel: a failure on either tells both parties.
    return guarded(server0, 'dealer', (server, adopt) => {
      const client = adopt(client0);
      const work = (async () => {
        for (const s of this.shapes) await dealLayer(server, client, s, this.model.secret[s.op]!.linear, this.random);
      })();
      // The server sends nothing to the dealer after its hello: anything arriving is its error frame or disconnect.
      const watch = server.recv().then(() => {
        throw malformed('unexpected message from the server');
      });
      const all = Promise.race([work, watch]);
      work.catch(() => {});
      watch.catch(() => {});
      return all.then(() => {
        const s = server0.stats(),
          c = client0.stats(),
          ms = server0.memory(),
          mc = client0.memory();
        return {
          session,
          layers: this.shapes.length,
          ms: performance.now() - t0,
          toServer: s.bytesSent - s0.bytesSent,
          toClient: c.bytesSent - c0.bytesSent,
          fromClient: c.bytesRecv - c0.bytesRecv,
          peakBufferedIn: ms.peakIn + mc.peakIn,
          peakBufferedOut: ms.peakOut + mc.peakOut,
        };
      });
    }).finally(() => clearTimeout(deadline));
  }

  /**
   * An in-process link: each call is a channelPair whose far end this dealer serves. Code in this process is trusted
   * with the server role (it can read the model anyway); parties in other processes use listen().
   */
  link(): DealerLink {
    return async (role) => {
      const [party, dealer] = channelPair({ name: `dealer-${role}` });
      void this.accept(dealer, { server: role === 'server' });
      return party;
    };
  }

  /**
   * Serves parties over TLS (one connection per party and session). `tls.clientAuth` (the server's certificate file
   * and/or pinned fingerprint) says who may take the server role: a party presenting that certificate as its TLS
   * client certificate. There is no plain-TCP dealer.
   */
  listen(o: {
    port: number;
    host?: string;
    tls: TlsServerConfig & { clientAuth: NonNullable<TlsServerConfig['clientAuth']> };
    maxConnections?: number;
    onRefused?: (why: string) => void;
  }): Promise<TcpListener> {
    if (!o.tls.clientAuth.ca && !o.tls.clientAuth.pins?.length)
      throw new Error(
        "dealer: give the server's certificate or fingerprint (--server-cert / --server-pin): only the server may take the server role",
      );
    return listenTcp(
      {
        port: o.port,
        host: o.host ?? '127.0.0.1',
        tls: o.tls,
        handshakeMs: this.helloMs,
        onError: this.onError,
        maxConnections: o.maxConnections ?? 2 * this.maxSessions + 16,
        ...(o.onRefused ? { onRefused: o.onRefused } : {}),
        limits: limitsFor(HELLO_MAX_BYTES, 'before the hello'),
      },
      (ch: StreamChannel) => this.accept(ch, { server: !!ch.peer?.verified }),
    );
  }
}

/**
 * A link to a dealer listening on host:port over TLS: `tls` verifies the dealer (its certificate or pin) and, for the
 * server, carries the server's own certificate and key (its credential for the server role).
 */
export function tcpDealerLink(
  host: string,
  port: number,
  tls: TlsClientConfig,
  o: { timeoutMs?: number } = {},
): DealerLink {
  return (role) => connectTls(host, port, tls, { name: `${role}->dealer ${host}:${port}`, ...o });
}
