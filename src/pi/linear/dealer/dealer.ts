// The trusted dealer for `--preprocess dealer`: a THIRD party, separate from the server, that knows the model's
// weights M (it loads the model as the server does) and does not collude with the server. It has its own channel to
// each party of a session; per secret linear layer it draws s, sends s to the server, receives the client's mask c
// and returns M c - s to the client (preprocess.ts dealLayer). The server never sees c.
//
// Sessions: the client draws a random 16-byte session id and sends it to the server (in its hello) and to the dealer;
// the server sends the same id to the dealer. The dealer pairs the two connections with equal ids (whichever comes
// first waits up to `pairTimeoutMs`), checks that both use its plan (digest) and that the server has its weights
// (fingerprint), then serves the session. Hello (JSON, party -> dealer, first message on each connection):
//   { protocol: 'deepreduce-pi-dealer/1', role: 'server' | 'client', session: 32 hex digits, plan: digest,
//     weights: fingerprint (server only) }
// The dealer serves sessions concurrently; a failing session is reported and the dealer goes on.
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { channelPair, type Channel } from '../../transport/channel.js';
import { connectTcp, listenTcp, type TcpListener } from '../../transport/tcp.js';
import { r64ToBytes } from '../../fixed.js';
import { Prg } from '../../crypto/prg.js';
import type { PublicPlan, ServerModel } from '../../plan.js';
import { dealLayer } from './preprocess.js';
import type { LinearShape } from '../index.js';
import { guarded, recvJsonChecked } from '../../wire.js';

export const DEALER_PROTOCOL = 'deepreduce-pi-dealer/1';

export type DealerRole = 'server' | 'client';

/** Opens this party's channel to the dealer (TCP: a new connection per session; in process: a channelPair). */
export type DealerLink = (role: DealerRole) => Promise<Channel>;

interface DealerHello {
  protocol: string;
  role: DealerRole;
  session: string;
  plan: string;
  weights?: string;
}

const SESSION_RE = /^[0-9a-f]{32}$/;

/** Checks a session id (32 lowercase hex digits = 16 bytes); returns it. */
export function checkSessionId(id: unknown, what: string): string {
  if (typeof id !== 'string' || !SESSION_RE.test(id)) {
    throw new Error(`${what}: malformed session id ${JSON.stringify(id)?.slice(0, 80)} (expected 32 lowercase hex digits)`);
  }
  return id;
}

/** The secret linear layers as (shape, layer) in plan order: the dealer's work list, the same on every side. */
export function linearShapes(plan: PublicPlan): LinearShape[] {
  const out: LinearShape[] = [];
  plan.ops.forEach((o, i) => {
    if (o.op === 'conv' || o.op === 'fc') out.push({ op: i, name: o.name, inSize: plan.ops[o.input]!.size, outSize: o.size, maxWeight: 2 ** (plan.fixed.weightBits - 1) - 1, ...(o.op === 'conv' ? { geom: o.geom } : {}) });
  });
  return out;
}

const fingerprints = new WeakMap<ServerModel, string>();

/**
 * A fingerprint of the secret linear maps: a hash of M_i u_i for fixed pseudo-random u_i (one application of every
 * layer, cached per model). The plan digest does not cover the weights, so this catches a dealer started on other
 * weights (e.g. another --seed), which would otherwise give wrong logits silently. It goes only to the dealer.
 */
export function modelFingerprint(model: ServerModel): string {
  let f = fingerprints.get(model);
  if (f) return f;
  const h = createHash('sha256').update(model.plan.digest);
  for (const s of linearShapes(model.plan)) {
    const layer = model.secret[s.op];
    if (!layer) throw new Error(`model: plan op ${s.op} (${s.name}) has no secret layer`);
    const seed = createHash('sha256').update(`deepreduce-pi fingerprint ${s.op}`).digest().subarray(0, 16);
    const u = new Prg(seed).bytes(8 * s.inSize);
    const w = new Uint32Array(u.buffer, u.byteOffset, 2 * s.inSize), lo = new Uint32Array(s.inSize), hi = new Uint32Array(s.inSize);
    for (let i = 0; i < s.inSize; i++) { lo[i] = w[2 * i]!; hi[i] = w[2 * i + 1]!; }
    h.update(r64ToBytes(layer.linear.apply({ lo, hi })));
  }
  f = h.digest('hex').slice(0, 16);
  fingerprints.set(model, f);
  return f;
}

/** Opens the dealer channel for one session and sends the hello (the dealer's first reply is data or an error). */
export async function joinDealer(link: DealerLink, role: DealerRole, session: string, model: { plan: PublicPlan; weights?: string }): Promise<Channel> {
  let ch: Channel;
  try {
    ch = await link(role);
  } catch (e) {
    throw new Error(`cannot reach the dealer: ${(e as Error).message}`);
  }
  ch.sendJson({ protocol: DEALER_PROTOCOL, role, session, plan: model.plan.digest, ...(model.weights ? { weights: model.weights } : {}) } satisfies DealerHello);
  return ch;
}

export interface DealerSessionInfo {
  session: string;
  layers: number;
  ms: number;
  /** Bytes the dealer sent to the server / client and received from the client. */
  toServer: number;
  toClient: number;
  fromClient: number;
}

export interface DealerOptions {
  /** How long a party waits for its counterpart with the same session id (default 30 s). */
  pairTimeoutMs?: number;
  onSession?: (info: DealerSessionInfo) => void;
  /** A failed connection or session (default: stderr). The dealer goes on serving. */
  onError?: (err: Error, ch: Channel) => void;
}

interface Waiting {
  role: DealerRole;
  ch: Channel;
  /** Ends the wait: the session will not start (why). */
  drop: (why: string) => void;
  /** The session this connection joined is over. */
  done: () => void;
}

export class Dealer {
  private readonly waiting = new Map<string, Waiting>();
  private readonly running = new Set<string>();
  /** Sessions that failed before both parties joined (recent ones), so that a late party is told at once. */
  private readonly failed = new Map<string, { reason: string; at: number }>();
  private readonly pairTimeoutMs: number;
  private readonly onError: (err: Error, ch: Channel) => void;
  private readonly shapes: LinearShape[];

  constructor(readonly model: ServerModel, private readonly o: DealerOptions = {}) {
    this.pairTimeoutMs = o.pairTimeoutMs ?? 30000;
    this.onError = o.onError ?? ((err, ch) => process.stderr.write(`[pi dealer] ${ch.name}: ${err.message}\n`));
    this.shapes = linearShapes(model.plan);
    modelFingerprint(model); // once, before serving (it applies every layer)
  }

  /** Sessions waiting for their second party / running now. */
  get pending(): number { return this.waiting.size; }
  get active(): number { return this.running.size; }

  /**
   * Serves one party's connection: reads its hello, pairs it with the other party's connection of the same
   * session, runs the session. Resolves when it is over; failures go to onError (reported once per session).
   */
  async accept(ch: Channel): Promise<void> {
    let hello: DealerHello, raw: Partial<DealerHello> | undefined;
    // A connection that never says hello is closed after the pairing timeout.
    let mute = false;
    const silent = setTimeout(() => { mute = true; ch.close(); }, this.pairTimeoutMs);
    try {
      hello = await guarded(ch, 'dealer', async (c) => this.checkHello((raw = await recvJsonChecked<DealerHello>(c, 'hello')), c.name));
    } catch (e) {
      this.onError(mute ? new Error(`no hello within ${(this.pairTimeoutMs / 1e3).toFixed(1)} s`) : e as Error, ch);
      const id = raw?.session;
      // The counterpart of a rejected party fails at once instead of waiting for the pairing timeout.
      if (typeof id === 'string' && SESSION_RE.test(id) && !this.running.has(id)) this.failSession(id, `the ${String(raw?.role)} was rejected: ${(e as Error).message}`);
      return;
    } finally {
      clearTimeout(silent);
    }
    const { session, role } = hello;
    const other = this.waiting.get(session), gone = this.failed.get(session);
    if (other?.role === role || gone) {
      this.failed.delete(session);
      const e = new Error(`session ${session}: ${gone ? gone.reason : `a ${role} already joined this session`}`);
      await guarded(ch, 'dealer', () => Promise.reject(e)).catch((err: Error) => this.onError(err, ch));
      return;
    }
    if (!other) {
      // First of the pair: wait for the counterpart, then until the session is over (run by the second).
      const peer = role === 'server' ? 'client' : 'server';
      const failed = await new Promise<Error | null>((done) => {
        const drop = (why: string) => {
          if (this.waiting.get(session)?.ch !== ch) return;
          this.waiting.delete(session);
          clearTimeout(timer);
          this.failSession(session, why);
          done(new Error(`session ${session}: ${why}`));
        };
        const timer = setTimeout(() => drop(`no ${peer} joined within ${(this.pairTimeoutMs / 1e3).toFixed(1)} s (wrong or unknown session id, or the ${peer} uses another dealer)`), this.pairTimeoutMs);
        this.waiting.set(session, { role, ch, drop, done: () => { clearTimeout(timer); done(null); } });
        // Read ahead while parked, so that a party that leaves is dropped at once; the session gets what was read.
        const recv = ch.recv.bind(ch), ahead: Promise<Uint8Array>[] = [];
        const readAhead = () => {
          const m = recv();
          ahead.push(m);
          m.then(() => { if (this.waiting.get(session)?.ch === ch) readAhead(); },
            (e: Error) => drop(`the ${role} left before a ${peer} joined (${e.message})`));
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
  private failSession(session: string, why: string): void {
    const w = this.waiting.get(session);
    if (w) return w.drop(why);
    const now = Date.now();
    for (const [id, f] of this.failed) {
      if (now - f.at < 2 * this.pairTimeoutMs && this.failed.size < 10000) break;
      this.failed.delete(id);
    }
    this.failed.set(session, { reason: why, at: now });
  }

  private checkHello(h: DealerHello, what: string): DealerHello {
    if (!h || typeof h !== 'object' || h.protocol !== DEALER_PROTOCOL) throw new Error(`${what}: party speaks '${String(h?.protocol)}', expected '${DEALER_PROTOCOL}'`);
    if (h.role !== 'server' && h.role !== 'client') throw new Error(`${what}: malformed hello: role ${JSON.stringify(h.role)}`);
    checkSessionId(h.session, `${what}: ${h.role} hello`);
    if (this.running.has(h.session)) throw new Error(`${what}: session ${h.session} is already running`);
    const mine = this.model.plan.digest;
    if (h.plan !== mine) throw new Error(`${what}: the ${h.role} uses plan ${String(h.plan)}, this dealer serves plan ${mine} (${this.model.plan.arch}); start the dealer on the server's model`);
    if (h.role === 'server') {
      const fp = modelFingerprint(this.model);
      if (h.weights !== fp) throw new Error(`${what}: the server's weights (fingerprint ${String(h.weights)}) differ from this dealer's (${fp}); start the dealer on the server's model`);
    }
    return h;
  }

  private async runSession(session: string, server0: Channel, client0: Channel): Promise<DealerSessionInfo> {
    const t0 = performance.now(), s0 = server0.stats(), c0 = client0.stats();
    // One guard per channel: a failure on either tells both parties.
    return guarded(server0, 'dealer', (server, adopt) => {
      const client = adopt(client0);
      const work = (async () => {
        for (const s of this.shapes) await dealLayer(server, client, s, this.model.secret[s.op]!.linear);
      })();
      // The server sends nothing to the dealer after its hello: anything arriving is its error frame or disconnect.
      const watch = server.recv().then(() => { throw new Error("unexpected message from the server"); });
      const all = Promise.race([work, watch]);
      work.catch(() => {});
      watch.catch(() => {});
      return all.then(() => {
        const s = server0.stats(), c = client0.stats();
        return { session, layers: this.shapes.length, ms: performance.now() - t0, toServer: s.bytesSent - s0.bytesSent, toClient: c.bytesSent - c0.bytesSent, fromClient: c.bytesRecv - c0.bytesRecv };
      });
    });
  }

  /** An in-process link: each call is a channelPair whose far end this dealer serves. */
  link(): DealerLink {
    return async (role) => {
      const [party, dealer] = channelPair({ name: `dealer-${role}` });
      void this.accept(dealer);
      return party;
    };
  }

  /** Serves parties over TCP (one connection per party and session). */
  listen(o: { port: number; host?: string }): Promise<TcpListener> {
    return listenTcp({ port: o.port, host: o.host, onError: this.onError }, (ch) => this.accept(ch));
  }
}

/** A link to a dealer listening on host:port. */
export function tcpDealerLink(host: string, port: number): DealerLink {
  return (role) => connectTcp(host, port, { name: `${role}->dealer ${host}:${port}` });
}
