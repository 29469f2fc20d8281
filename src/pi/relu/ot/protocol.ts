// ReLU by OT (CrypTFlow2/SCI structure): local truncation, DReLU by the millionaires' protocol, ReLU by an OT
// multiplexer, then a re-share to the client's offline output share r.
//   (1) truncate: server a' = a >> shift (logical), client b' = −((−b) >> shift): a' + b' = floor(x / 2^shift) or
//       one more, except with probability ~2^(l+1−64) for |x| < 2^l (fixed.ts, as at culled sites);
//   (2) DReLU: with w = width − shift, x' = a' + b' read mod 2^w, MSB(x') = a'_{w−1} ⊕ b'_{w−1} ⊕ carry, where
//       carry = [a'_low > 2^(w−1) − 1 − b'_low] over the low w−1 bits: the millionaires' protocol with the server's
//       a'_low against the client's complement of b'_low (known offline); DReLU = 1 ⊕ MSB, XOR-shared (d0, d1);
//   (3) ReLU = DReLU · x' by two additive COTs over Z_2^64, one per direction: the server sends (its correlation
//       (1 − 2 d0) a') to the client's choice d1, the client (1 − 2 d1) b' to the server's choice d0; each COT is a
//       random OT from offline, derandomized online (choice correction e = d ⊕ ρ, then one 8-byte message);
//   (4) re-share: the client sends its mux share − r (padded by r), so the server holds y − r and the client r.
// Offline (per batch of the site; inputs: none for the server, b for the client): the millionaire's KK13 leaves
// and triples, and one random OT per element in each IKNP direction for the mux. Online, with Λ tree levels
// (Λ = 3 for the plan's 32-bit comparisons), flights alternate: the comparison's Λ + 1, then the mux's two and the
// re-share, which ride on them: Λ + 3 flights per ReLU op when the client ends the comparison (odd Λ), Λ + 4 else.
// Protocol 'ot' makes the correlations offline and keeps them (the client ~30 B per ReLU, the server ~60 B);
// 'ot-online' makes them at the start of each ReLU op's online call, so that neither party keeps anything between the
// phases beyond the shares b and r (the OT matrices go both ways before the comparison: one more flight for an op
// alone, none in a session, where the client's matrices follow its re-share of the previous op). Either way a
// site's OT matrices go in chunks of `batch` ReLUs, CHUNKS_IN_FLIGHT of them sent ahead of the receives (a silent
// session readies the COTs of that many at a time), so that messages, buffers and memory are bounded by the batch,
// not by the site.
import type { Channel } from '../../transport/channel.js';
import { r64Add, r64Shr, r64Slice, r64Sub, truncClientShare, r64FromBytes, r64ToBytes, type R64 } from '../../fixed.js';
import {
  bitWords,
  bitsBytes,
  bitsFromBytes,
  clampBits,
  concatBytes,
  concatWords,
  getBit,
  type Bits,
} from '../../bits.js';
import { OT_SESSION_MAX_BYTES, otSession, type OtSession } from '../../ot/session.js';
import { silentOtSession, silentReserveMessages, silentSessionMaxBytes } from '../../ot/silent-session.js';
import {
  cotChoiceCorrection,
  cotReceiveOnline,
  cotSendOnline,
  rotReceive64,
  rotSend64,
  selectSub,
  type RotReceiver64,
  type RotSender64,
} from '../../ot/cot.js';
import {
  compare,
  compareShape,
  lastSender,
  millionaireReceive,
  millionaireSend,
  onlineFlightWords,
  tripleOts,
  type CompareShape,
  type MillClientCorr,
  type MillServerCorr,
  type TripleShares,
} from '../../millionaire/millionaire.js';
import { recvChecked } from '../../wire.js';
import {
  batches,
  type ReluClient,
  type ReluClientOptions,
  type ReluOptions,
  type ReluProtocol,
  type ReluServer,
  type ReluServerOptions,
  type ReluSite,
} from '../index.js';
import { boundsOf, widest, type MessageBounds, type PhaseBounds, type ScheduledMessage } from '../../messages.js';

/** Radix of the comparison's leaves: 1-out-of-16 OT on 4-bit digits. */
export const OT_RELU_DIGIT = 4;

export function siteShape(site: ReluSite): CompareShape {
  const w = site.width - site.shift;
  if (w < 2)
    throw new Error(`relu ot: ${site.name}: width ${site.width} - shift ${site.shift} leaves no sign bit to compare`);
  return compareShape(w - 1, OT_RELU_DIGIT);
}

/** Chunks of the site for the OT batches: multiples of 32 elements so that packed bits join by words. */
const chunks = (n: number, batch: number) => batches(n, Math.max(32, Math.ceil(batch / 32) * 32));

const joinR = (parts: R64[]): R64 => ({
  lo: concatWords(parts.map((p) => p.lo)),
  hi: concatWords(parts.map((p) => p.hi)),
});

/** The chunks' arrays joined (null where the chunks hold none). */
const joinWords = <T extends Uint32Array | null>(parts: T[]): T =>
  (parts[0] === null ? null : concatWords(parts as Uint32Array[])) as T;

/** Per leaf j, the chunks' j-th arrays (of `leaves`) joined. */
const joinLeaves = <M, T extends Uint32Array | null>(shape: CompareShape, parts: M[], leaves: (m: M) => T[]): T[] =>
  shape.leafEq.map((_, j) => joinWords(parts.map((p) => leaves(p)[j]!)));

function joinTriples(parts: TripleShares[][]): TripleShares[] {
  return parts[0]!.map((_, u) => ({
    a: joinWords(parts.map((p) => p[u]!.a)),
    b: joinWords(parts.map((p) => p[u]!.b)),
    c: joinWords(parts.map((p) => p[u]!.c)),
    b2: joinWords(parts.map((p) => p[u]!.b2)),
    c2: joinWords(parts.map((p) => p[u]!.c2)),
  }));
}

/** Bit k of each value, packed. */
function bitOf(x: R64, k: number): Bits {
  const n = x.lo.length,
    v = new Uint32Array(bitWords(n)),
    src = k < 32 ? x.lo : x.hi,
    sh = k & 31;
  for (let i = 0; i < n; i++) v[i >>> 5] |= ((src[i]! >>> sh) & 1) << (i & 31);
  return v;
}

/** (1 − 2d) · x: x where d = 0, −x where d = 1. */
function signed(d: Bits, x: R64): R64 {
  const n = x.lo.length,
    out: R64 = { lo: new Uint32Array(n), hi: new Uint32Array(n) };
  for (let i = 0; i < n; i++) {
    if (getBit(d, i)) {
      out.lo[i] = -x.lo[i]!;
      out.hi[i] = ~x.hi[i]! + (x.lo[i] === 0 ? 1 : 0);
    } else {
      out.lo[i] = x.lo[i]!;
      out.hi[i] = x.hi[i]!;
    }
  }
  return out;
}

/** d · x − x0: the COT sender's mux share. */
const senderShare = (d: Bits, x: R64, x0: R64): R64 => selectSub(d, x, x0);

/** A received message of choice corrections (n bits) and/or ring values (n each), in that order. */
async function recvMux(
  ch: Channel,
  what: string,
  n: number,
  bits: boolean,
  rings: number,
): Promise<{ e: Bits | null; v: R64[] }> {
  const nb = bits ? (n + 7) >>> 3 : 0,
    m = await recvChecked(ch, what, nb + 8 * n * rings);
  const e = bits ? bitsFromBytes(m.subarray(0, nb), n, `${ch.name}: malformed message: ${what}`) : null;
  const v: R64[] = [];
  for (let k = 0; k < rings; k++)
    v.push(r64FromBytes(m.subarray(nb + 8 * n * k, nb + 8 * n * (k + 1)), n, `${ch.name}: ${what}`));
  return { e, v };
}

/** A promise awaited after others: if one of those fails first, that failure is the one reported. */
function awaitedLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** Bytes of the typed arrays in a correlation record (what a party holds between the phases). */
function heldIn(x: unknown): number {
  if (ArrayBuffer.isView(x)) return x.byteLength;
  if (Array.isArray(x)) return x.reduce((a: number, v) => a + heldIn(v), 0);
  if (x && typeof x === 'object') return Object.values(x).reduce((a: number, v) => a + heldIn(v), 0);
  return 0;
}

/** Chunks whose OT matrices a party sends before it reads the peer's of the first: its unread stay within 2x that. */
export const CHUNKS_IN_FLIGHT = 2;

/**
 * The groups of a site's chunks, [first, end) chunk indices: a silent session readies a group's COTs at once (a
 * sync point: nothing in flight), so it holds at most a group's COTs and a round; without one, the whole site.
 */
function chunkGroups(nChunks: number, silent: boolean): [number, number][] {
  if (!silent) return nChunks ? [[0, nChunks]] : [];
  const out: [number, number][] = [];
  for (let k = 0; k < nChunks; k += CHUNKS_IN_FLIGHT) out.push([k, Math.min(nChunks, k + CHUNKS_IN_FLIGHT)]);
  return out;
}

/**
 * A party's correlations for a site, one OT batch per chunk of `batch` ReLUs, CHUNKS_IN_FLIGHT chunks in flight: a
 * chunk's sends (the server B's matrices: triples, mux; the client KK13's and A's: leaves, triples, mux) go out once
 * the chunk CHUNKS_IN_FLIGHT before it is received, so that a receiver's unread bytes are bounded by a few chunks, not
 * by the site. A silent session readies each group's COTs before the group's first send. The millionaire's
 * correlations stay per chunk; the mux's are joined. `b`: the client's input share.
 */
async function prepareChunks(ots: OtSession, site: ReluSite, batch: number, role: 'server' | 'client', b?: R64) {
  const shape = siteShape(site),
    y = b && clientInputs(b, site.shift).y,
    parts = chunks(site.size, batch);
  const mills: (MillServerCorr | MillClientCorr)[] = [],
    muxS: RotSender64[] = [],
    muxR: RotReceiver64[] = [];
  type Sent = { n: number; pending: ReturnType<typeof millionaireSend>; muxR: Promise<RotReceiver64> };
  const receive = async (c: Sent) => {
    mills.push(await millionaireReceive(ots, shape, c.pending));
    muxS.push(await rotSend64(ots.sender, c.n));
    muxR.push(await c.muxR);
  };
  for (const [g0, g1] of chunkGroups(parts.length, !!ots.reserve)) {
    if (ots.reserve) {
      const need = chunkCots(shape, parts.slice(g0, g1));
      await ots.reserve(need.a, need.b);
    }
    const flying: Sent[] = [];
    for (let k = g0; k < g1; k++) {
      if (flying.length === CHUNKS_IN_FLIGHT) await receive(flying.shift()!);
      const [s, e] = parts[k]!;
      flying.push({
        n: e - s,
        pending: millionaireSend(ots, shape, role, e - s, y && r64Slice(y, s, e)),
        muxR: awaitedLater(rotReceive64(ots.receiver, e - s, ots.random)),
      });
    }
    while (flying.length) await receive(flying.shift()!);
  }
  return {
    shape,
    mills,
    muxS: { r0: joinR(muxS.map((p) => p.r0)), r1: joinR(muxS.map((p) => p.r1)) },
    muxR: { choice: joinWords(muxR.map((p) => p.choice)), r: joinR(muxR.map((p) => p.r)) },
  };
}

interface ServerSite {
  mill: MillServerCorr;
  /** OT1: the server sends to the client's choice d1. */
  muxS: RotSender64;
  /** OT2: the server receives with choice d0. */
  muxR: RotReceiver64;
}

/** When the OT correlations of a site are made: in its offline call (stored until online) or at its online call. */
export type Precompute = 'offline' | 'online';

class OtServer implements ReluServer {
  private readonly sites = new Map<number, ServerSite | null>();
  private held = 0;
  constructor(
    private readonly ch: Channel,
    private readonly ots: OtSession,
    private readonly batch: number,
    private readonly when: Precompute,
  ) {}

  heldBytes(): number {
    return this.held;
  }

  async offline(site: ReluSite): Promise<void> {
    const st = this.when === 'offline' ? await this.prepare(site, this.batch) : null;
    this.sites.set(site.op, st);
    this.held += heldIn(st);
  }

  private async prepare(site: ReluSite, batch: number): Promise<ServerSite> {
    const { shape, mills, muxS, muxR } = await prepareChunks(this.ots, site, batch, 'server');
    const parts = mills as MillServerCorr[];
    const mill: MillServerCorr = {
      n: site.size,
      pads: joinLeaves(shape, parts, (p) => p.pads),
      gt: joinLeaves(shape, parts, (p) => p.gt),
      eq: joinLeaves(shape, parts, (p) => p.eq),
      triples: shape.units ? joinTriples(parts.map((p) => p.triples)) : [],
    };
    return { mill, muxS, muxR };
  }

  async online(site: ReluSite, a: R64): Promise<R64> {
    if (!this.sites.has(site.op)) throw new Error(`relu ot: ${site.name}: online before offline`);
    const kept = this.sites.get(site.op) ?? null;
    this.sites.delete(site.op);
    this.held -= heldIn(kept);
    const st = kept ?? (await this.prepare(site, this.batch));
    const shape = siteShape(site),
      n = site.size,
      w = site.width - site.shift,
      what = `online: ${site.name}`;
    const x = r64Shr(a, site.shift);
    const root = await compare(this.ch, 'server', shape, st.mill, x, what);
    // d0 = 1 ⊕ MSB_{w−1}(a') ⊕ carry0
    const d = bitOf(x, w - 1);
    for (let k = 0; k < d.length; k++) d[k] = ~(d[k]! ^ root[k]!);
    clampBits(d, n);
    const delta = signed(d, x);
    let share: R64, mR: R64;
    if (lastSender(shape) === 'client') {
      const e1 = (await recvMux(this.ch, `${what}: mux choice corrections`, n, true, 0)).e!;
      const s = cotSendOnline(st.muxS, e1, delta);
      share = senderShare(d, x, s.x0);
      this.ch.send(concatBytes([bitsBytes(cotChoiceCorrection(st.muxR, d), n), r64ToBytes(s.y)]));
      const [yB, z] = (await recvMux(this.ch, `${what}: mux message and re-share`, n, false, 2)).v as [R64, R64];
      mR = r64Add(cotReceiveOnline(st.muxR, d, yB), z);
    } else {
      this.ch.send(bitsBytes(cotChoiceCorrection(st.muxR, d), n));
      const { e, v } = await recvMux(this.ch, `${what}: mux choice corrections and message`, n, true, 1);
      const s = cotSendOnline(st.muxS, e!, delta);
      share = senderShare(d, x, s.x0);
      this.ch.send(r64ToBytes(s.y));
      const z = (await recvMux(this.ch, `${what}: re-share`, n, false, 1)).v[0]!;
      mR = r64Add(cotReceiveOnline(st.muxR, d, v[0]!), z);
    }
    return r64Add(share, mR);
  }
}

interface ClientCorr {
  mill: MillClientCorr;
  /** OT1: the client receives with choice d1. */
  muxR: RotReceiver64;
  /** OT2: the client sends to the server's choice d0. */
  muxS: RotSender64;
}

interface ClientSite {
  /** The input share and the output share r (the session holds both as its own shares; not counted as held here). */
  b: R64;
  r: R64;
  corr: ClientCorr | null;
}

/** The client's truncated share b' and its comparison input: the complement of b' (low w−1 bits are read). */
function clientInputs(b: R64, shift: number): { bt: R64; y: R64 } {
  const bt = truncClientShare(b, shift),
    n = bt.lo.length,
    y: R64 = { lo: new Uint32Array(n), hi: new Uint32Array(n) };
  for (let i = 0; i < n; i++) {
    y.lo[i] = ~bt.lo[i]!;
    y.hi[i] = ~bt.hi[i]!;
  }
  return { bt, y };
}

class OtClient implements ReluClient {
  private readonly sites = new Map<number, ClientSite>();
  private held = 0;
  constructor(
    private readonly ch: Channel,
    private readonly ots: OtSession,
    private readonly batch: number,
    private readonly when: Precompute,
  ) {}

  heldBytes(): number {
    return this.held;
  }

  async offline(site: ReluSite, b: R64, r: R64): Promise<void> {
    if (r.lo.length !== site.size)
      throw new Error(`relu ot: ${site.name}: a mask of ${r.lo.length} elements, expected ${site.size}`);
    const corr = this.when === 'offline' ? await this.prepare(site, b, this.batch) : null;
    this.sites.set(site.op, { b, r, corr });
    this.held += heldIn(corr);
  }

  private async prepare(site: ReluSite, b: R64, batch: number): Promise<ClientCorr> {
    const { shape, mills, muxS, muxR } = await prepareChunks(this.ots, site, batch, 'client', b);
    const parts = mills as MillClientCorr[];
    const mill: MillClientCorr = {
      n: site.size,
      pgt: joinLeaves(shape, parts, (p) => p.pgt),
      peq: joinLeaves(shape, parts, (p) => p.peq),
      triples: shape.units ? joinTriples(parts.map((p) => p.triples)) : [],
    };
    return { mill, muxR, muxS };
  }

  async online(site: ReluSite): Promise<void> {
    const site0 = this.sites.get(site.op);
    if (!site0) throw new Error(`relu ot: ${site.name}: online before offline`);
    this.sites.delete(site.op);
    this.held -= heldIn(site0.corr);
    const st = { ...site0, ...(site0.corr ?? (await this.prepare(site, site0.b, this.batch))) };
    const shape = siteShape(site),
      n = site.size,
      w = site.width - site.shift,
      what = `online: ${site.name}`;
    const { bt, y } = clientInputs(st.b, site.shift);
    const root = await compare(this.ch, 'client', shape, st.mill, y, what);
    // d1 = MSB_{w−1}(b') ⊕ carry1
    const d = bitOf(bt, w - 1);
    for (let k = 0; k < d.length; k++) d[k] = d[k]! ^ root[k]!;
    clampBits(d, n);
    const delta = signed(d, bt);
    if (lastSender(shape) === 'client') {
      this.ch.send(bitsBytes(cotChoiceCorrection(st.muxR, d), n));
      const { e, v } = await recvMux(this.ch, `${what}: mux choice corrections and message`, n, true, 1);
      const s = cotSendOnline(st.muxS, e!, delta);
      const share = r64Add(senderShare(d, bt, s.x0), cotReceiveOnline(st.muxR, d, v[0]!));
      this.ch.send(concatBytes([r64ToBytes(s.y), r64ToBytes(r64Sub(share, st.r))]));
    } else {
      const e0 = (await recvMux(this.ch, `${what}: mux choice corrections`, n, true, 0)).e!;
      const s = cotSendOnline(st.muxS, e0, delta);
      this.ch.send(concatBytes([bitsBytes(cotChoiceCorrection(st.muxR, d), n), r64ToBytes(s.y)]));
      const yA = (await recvMux(this.ch, `${what}: mux message`, n, false, 1)).v[0]!;
      const share = r64Add(senderShare(d, bt, s.x0), cotReceiveOnline(st.muxR, d, yA));
      this.ch.send(r64ToBytes(r64Sub(share, st.r)));
    }
  }
}

/**
 * COTs these chunks' correlations take from a session whose leaves run on its COTs (silent): `a` with the server as
 * sender (the leaves' log2 N per leaf OT, the triples', the mux's), `b` with the client as sender (triples', mux's).
 */
function chunkCots(shape: CompareShape, parts: readonly [number, number][]): { a: number; b: number } {
  const lg = Math.log2(shape.N);
  let a = 0,
    b = 0;
  for (const [s, e] of parts) {
    const ne = e - s,
      m = tripleOts(shape, ne);
    a += lg * shape.leaves * ne + m + ne;
    b += m + ne;
  }
  return { a, b };
}

/** COTs a site's correlations take from a silent session, all its chunks together (chunkCots). */
export const siteCots = (site: ReluSite, batch: number): { a: number; b: number } =>
  chunkCots(siteShape(site), chunks(site.size, batch));

const pad128 = (m: number) => Math.ceil(m / 128) * 128;
const pad32 = (m: number) => Math.ceil(m / 32) * 32;

/**
 * The messages of one site, in the order prepare() and online() send them: its correlations' (the OT matrices of each
 * chunk; CHUNKS_IN_FLIGHT consecutive chunks make a flight, as do a silent group's reserve rounds), then its
 * comparison's and multiplexer's.
 */
function siteMessages(
  site: ReluSite,
  batch: number,
  silent: boolean,
): { corr: ScheduledMessage[]; online: ScheduledMessage[] } {
  const shape = siteShape(site),
    n = site.size,
    L = shape.leaves,
    parts = chunks(n, batch),
    corr: ScheduledMessage[] = [];
  const flight = (k: number) => `corr:${Math.floor(k / CHUNKS_IN_FLIGHT)}`;
  if (silent) {
    const lg = Math.log2(shape.N),
      bits = (m: number) => (m + 7) >>> 3;
    for (const [g0, g1] of chunkGroups(parts.length, true)) {
      // The reserve's rounds (A's to the client, then B's to the server), then per chunk the COTs' choice corrections.
      const cots = chunkCots(shape, parts.slice(g0, g1)),
        r = silentReserveMessages(cots.a, cots.b);
      for (let k = 0; k < r.toClient; k++) corr.push({ to: 'client', bytes: r.bytes, flight: `reserve:${g0}` });
      for (let k = 0; k < r.toServer; k++) corr.push({ to: 'server', bytes: r.bytes, flight: `reserve:${g0}` });
      for (let k = g0; k < g1; k++) {
        const [s, e] = parts[k]!,
          ne = e - s,
          m = tripleOts(shape, ne);
        for (const bytes of [bits(lg * L * ne), m ? bits(m) : 0, bits(ne)])
          if (bytes) corr.push({ to: 'server', bytes, flight: flight(k) });
        for (const bytes of [m ? bits(m) : 0, bits(ne)])
          if (bytes) corr.push({ to: 'client', bytes, flight: flight(k) });
      }
    }
  } else
    parts.forEach(([s, e], k) => {
      const ne = e - s,
        m = tripleOts(shape, ne);
      // client -> server: the KK13 matrix of the leaves (256 columns), IKNP A's matrices (triples, mux)
      const kk = 32 * pad32(L * ne),
        triA = m ? 16 * pad128(m) : 0,
        muxA = 16 * pad128(ne);
      // server -> client: IKNP B's matrices (triples, mux)
      const triB = triA,
        muxB = muxA;
      for (const bytes of [kk, triA, muxA]) corr.push({ to: 'server', bytes, flight: flight(k) });
      for (const bytes of [triB, muxB]) corr.push({ to: 'client', bytes, flight: flight(k) });
    });
  // The comparison's flights (leaf tables with the server's first openings, then openings), then the multiplexer's
  // choice corrections (n bits), messages (8n) and the re-share (8n) in the order online() sends them.
  const online: ScheduledMessage[] = [],
    bits = (n + 7) >>> 3;
  onlineFlightWords(shape, n).forEach((w, k) => online.push({ to: k % 2 === 0 ? 'client' : 'server', bytes: 4 * w }));
  if (lastSender(shape) === 'client') {
    online.push({ to: 'server', bytes: bits }, { to: 'client', bytes: bits + 8 * n }, { to: 'server', bytes: 16 * n });
  } else {
    online.push(
      { to: 'client', bytes: bits },
      { to: 'server', bytes: bits + 8 * n },
      { to: 'client', bytes: 8 * n },
      { to: 'server', bytes: 8 * n },
    );
  }
  return { corr, online };
}

function otProtocol(name: string, when: Precompute, silent = false): ReluProtocol {
  return {
    name,
    async server(ch: Channel, o: ReluServerOptions): Promise<ReluServer> {
      const ots = silent
        ? await silentOtSession(ch, 'server', o.random.bytes)
        : await otSession(ch, 'server', o.random.bytes, o.workers ?? null);
      return new OtServer(ch, ots, o.batch, when);
    },
    async client(ch: Channel, o: ReluClientOptions): Promise<ReluClient> {
      const ots = silent
        ? await silentOtSession(ch, 'client', o.random.bytes)
        : await otSession(ch, 'client', o.random.bytes);
      return new OtClient(ch, ots, o.batch, when);
    },
    maxMessageBytes(sites: readonly ReluSite[], o: ReluOptions): PhaseBounds {
      const offline: MessageBounds[] = [],
        online: MessageBounds[] = [];
      for (const site of sites) {
        const m = siteMessages(site, o.batch, silent);
        // 'ot' sends the OT matrices in the site's offline call, 'ot-online' in its online call.
        (when === 'offline' ? offline : online).push(boundsOf(m.corr));
        online.push(boundsOf(m.online));
      }
      const setup = silent ? silentSessionMaxBytes() : OT_SESSION_MAX_BYTES;
      return { setup: widest(setup), offline: widest(...offline), online: widest(...online) };
    },
  };
}

/** Correlations made offline and kept until online (~30 B per ReLU at the client, ~60 B at the server). */
export const otRelu = otProtocol('ot', 'offline');
/** Correlations made at each ReLU op's online call: nothing kept between the phases (SCI's setting). */
export const otOnlineRelu = otProtocol('ot-online', 'online');
/** As 'ot', on the silent COT (ot/ferret.ts) with the leaves on 1-out-of-N OT from COTs (ot/nco.ts). */
export const silentRelu = otProtocol('silent', 'offline', true);
