// OT for a session in which both parties send and receive (the OT-based ReLU): two IKNP extensions, one per
// direction, and a KK13 1-out-of-N extension with the server as sender, all from ONE batch of 128 Chou-Orlandi base
// OTs. The base OTs seed the server-to-client IKNP extension (A: server sends); 128 of A's random OTs seed the
// client-to-server one (B: client sends, its Δ = its choice bits in A); 256 of B's random OTs seed KK13 (server
// sends, its s = its choice bits in B). A random OT from an extension is as good a base OT as a fresh one
// (semi-honest), and this replaces 384 public-key base OTs (about 1.4 s of CPU for both parties) by ~6 KB of extension traffic.
// A and B are any OT extension (ot.ts's CotExtension; IKNP by default): everything above sees only the interface.
//
// Messages: the base OTs (A: S -> C, then C -> S), A's matrix for 128 OTs (C -> S), B's matrix for 256 OTs (S -> C).
import type { Channel } from '../transport/channel.js';
import type { Random } from '../random.js';
import { iknp } from './iknp.js';
import { baseOtMessageBytes } from './baseot.js';
import { RotReceiver, RotSender, type CotExtension } from './ot.js';
import { KK_CODE_BITS, KkReceiver, KkSender, type KkPlanesHelper } from './kkot.js';

export type OtRole = 'server' | 'client';

/**
 * The OT extension of this session and of the gc ReLU's labels. The silent OT (ferret.ts) is another CotExtension;
 * the silent ReLU builds its own session on it (silent-session.ts), with the leaves on COTs instead of KK13.
 */
export const SESSION_COT: CotExtension = iknp;

export interface OtSession {
  /** The extension with this party as sender (server: A, client: B), with random and chosen OT on it. */
  sender: RotSender;
  /** The extension with this party as receiver (server: B, client: A). */
  receiver: RotReceiver;
  /** KK13, server side. */
  kkSender: KkSender | null;
  /** KK13, client side. */
  kkReceiver: KkReceiver | null;
  /** This party's coins for everything drawn on top of the session (the random OTs' choices, shares, triples). */
  random: Random;
  /** Server: another thread that hashes half of each large KK13 batch (the server's workers); null: this one alone. */
  kkHelper?: KkPlanesHelper | null;
  /** Where set, the millionaire's leaves run on the session's COTs (ot/nco.ts) instead of KK13. */
  leaves?: LeafOt | null;
  /**
   * Where set (a silent COT), readies `a` COTs with the server as sender and `b` with the client as sender, before a
   * step that sends before it receives in both directions; both parties call it at the same point.
   */
  reserve?: (a: number, b: number) => Promise<void>;
}

/** 1-out-of-N random OT for the millionaire's leaves (ot/nco.ts's layout: the sender's pads as bit planes). */
export interface LeafOt {
  /** Server (sender): the low `planes` bits of the N pads of m OTs, word j·planes + p, bit i. */
  sendPlanes(m: number, N: number, planes: number): Promise<Uint32Array>;
  /** Client (receiver): per OT a byte of the low `planes` bits of its chosen pad; its message goes out at once. */
  receivePads(choices: Uint8Array, m: number, N: number, planes: number): Promise<Uint8Array>;
}

const split16 = (b: Uint8Array, n: number) => Array.from({ length: n }, (_, i) => b.slice(16 * i, 16 * i + 16));

/** Bytes of the set-up's largest message each way: A's matrix for 128 OTs (C -> S); the base OTs' receiver points and B's matrix for 256 OTs (S -> C). */
export const OT_SESSION_MAX_BYTES = {
  toServer: 16 * 128,
  toClient: Math.max(baseOtMessageBytes(128), 16 * KK_CODE_BITS),
};

/**
 * Runs this party's half of the session's OT set-up (both parties call it concurrently, with their roles). Every coin
 * (base-OT scalars, Δ of A, Δ of B, the KK13 s) comes from `random`, which the session keeps for later draws.
 */
export async function otSession(
  ch: Channel,
  role: OtRole,
  random: Random,
  kkHelper: KkPlanesHelper | null = null,
  ext: CotExtension = SESSION_COT,
): Promise<OtSession> {
  if (role === 'server') {
    const a = new RotSender(ch, await ext.sender(ch, { random }));
    const { m0, m1 } = await a.sendRandom(128);
    const b = new RotReceiver(ch, ext.receiverFromBase(ch, split16(m0, 128), split16(m1, 128)));
    const s = random.bytes(KK_CODE_BITS / 8);
    const keys = await b.receiveRandom(s, KK_CODE_BITS);
    return {
      sender: a,
      receiver: b,
      kkSender: KkSender.fromBase(ch, s, split16(keys, KK_CODE_BITS)),
      kkReceiver: null,
      random,
      kkHelper,
    };
  }
  const a = new RotReceiver(ch, await ext.receiver(ch, { random }));
  const deltaB = random.bytes(16);
  const keys = await a.receiveRandom(deltaB, 128);
  const b = new RotSender(ch, ext.senderFromBase(ch, deltaB, split16(keys, 128)));
  const { m0, m1 } = await b.sendRandom(KK_CODE_BITS);
  return {
    sender: b,
    receiver: a,
    kkSender: null,
    kkReceiver: KkReceiver.fromBase(ch, split16(m0, KK_CODE_BITS), split16(m1, KK_CODE_BITS)),
    random,
  };
}
