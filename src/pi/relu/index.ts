// ReLU protocols behind one interface. Every protocol keeps the session's invariant: the client's share of every
// value is known OFFLINE (before the image), the server's is computed ONLINE. For a kept site with input shares
// a (server) and b (client), x = a + b mod 2^64, the protocol leaves the server with y - r and the client with r,
// where y = ReLU(x) >> shift and r is the client's fresh output share, drawn offline by the session (protocol.ts).
//   gc/  garbled circuits (Delphi): the server garbles offline, the client evaluates online.
//   ot/  OT-based comparison (CrypTFlow2/SCI millionaires' protocol) and OT multiplexer; OT correlations offline
//        ('ot') or at each op's online call ('ot-online').
import type { Channel } from '../transport/channel.js';
import type { R64 } from '../fixed.js';
import type { ClientRandomness, ServerRandomness } from '../random.js';
import type { KkPlanesHelper } from '../ot/kkot.js';
import type { ReluSite } from '../relusite.js';
import type { PhaseBounds } from '../messages.js';

export type { ReluSite };

/** [start, end) of each batch of `size` elements over n: full batches and a last partial one. */
export function batches(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
}

export interface ReluServer {
  /** Offline, input-independent work for one site (e.g. garbling); called in plan order. */
  offline(site: ReluSite): Promise<void>;
  /** Online: the server's input share a -> its output share y - r. Called in plan order. */
  online(site: ReluSite, a: R64): Promise<R64>;
  /** Bytes of protocol state held now between calls (e.g. labels kept from offline to online), for reports. */
  heldBytes(): number;
}

export interface ReluClient {
  /** Offline: the client's input share b (known offline) and its output share r (the session draws it, in plan order). */
  offline(site: ReluSite, b: R64, r: R64): Promise<void>;
  /** Online: the client's half of the site's protocol. */
  online(site: ReluSite): Promise<void>;
  /** Bytes of protocol state held now between calls (e.g. garbled tables kept from offline to online). */
  heldBytes(): number;
}

export interface ReluOptions {
  /** ReLUs per batch (one OT batch / one message); protocols bound their memory and message sizes by it. */
  batch: number;
}

/** Every coin a half draws comes from `random` (tests fix or couple it; the client's masks r come from the session). */
export interface ReluServerOptions extends ReluOptions {
  random: ServerRandomness;
  /** The server's worker threads (Node: pi/workers), for protocols that split their work. */
  workers?: KkPlanesHelper | null;
}
export interface ReluClientOptions extends ReluOptions {
  random: ClientRandomness;
}

/** A ReLU protocol: `server` / `client` run its session set-up (e.g. base OTs) on the peer channel. */
export interface ReluProtocol {
  readonly name: string;
  server(ch: Channel, o: ReluServerOptions): Promise<ReluServer>;
  client(ch: Channel, o: ReluClientOptions): Promise<ReluClient>;
  /** The largest messages (and flights) each way of a session over `sites`, per phase. */
  maxMessageBytes(sites: readonly ReluSite[], o: ReluOptions): PhaseBounds;
}
