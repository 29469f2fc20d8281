// The millionaires' protocol of CrypTFlow2/SCI on a batch of n comparisons: the server holds x, the client y
// (values < 2^bits, 1 <= bits <= 63), and each ends with an XOR share of [x > y].
//
// x and y are cut into digits of `digit` bits (leaves, least significant first). Per leaf, a 1-out-of-N OT
// (N = 2^digit, KK13) gives XOR shares of gt = [x_j > y_j] and eq = [x_j = y_j]: the client chooses its digit y_j,
// the server's N messages are (gt0 ⊕ [x_j > k], eq0 ⊕ [x_j = k]) for k < N with its random shares gt0, eq0.
// The leaves are combined pairwise up a tree, (hi, lo) -> (gt_hi ⊕ eq_hi ∧ gt_lo, eq_hi ∧ eq_lo), each AND by a
// Beaver bit triple; the two ANDs of one node share the factor eq_hi, so they use one correlated pair of triples
// (a, b, c), (a, b2, c2). Nodes that never act as `hi` later need no eq (the least significant branch, the root).
//
// Offline (input-independent for the server; the client's choices are its digits, which it knows offline):
//   KK13 for the leaves (client -> server matrix, 32 B per leaf; or, where the OT session has `leaves`, 1-out-of-N OT
//   on its COTs, ot/nco.ts: 4 bits of choice correction per leaf on a silent COT), the triples from random OTs in both directions
//   (IKNP A and B of the OT session, one OT per triple unit and direction, 16 B each): for a unit the server's
//   pads (m0, m1) of A and the client's of B define b = m0 ⊕ m1 (bit 0; bit 1 gives b2), the receivers' random
//   choices are the a's, so a_S b_C and a_C b_S come out XOR-shared with no further message.
// Online, alternating flights (F1 = server), Λ = tree levels:
//   F1 (S): the leaf tables (N bits per leaf for gt, N for eq; masked by the KK13 pads) and the server's openings
//           of level 1 (its leaf shares are random, known before the input);
//   F_f (2 <= f <= Λ+1): the sender's openings of level f-1 (completing it) and of level f (if f <= Λ).
// So Λ + 1 flights in all; the sender of the last flight knows its share first. Radix 16 on 32 bits: 8 leaves,
// 3 levels, 4 flights, 11 ANDs (4 correlated pairs, 3 single triples).
import type { Channel } from '../transport/channel.js';
import type { R64 } from '../fixed.js';
import type { OtSession } from '../ot/session.js';
import type { Random } from '../random.js';
import { bitWords, clampBits, concatWords, randomBitWords, xorBits, type Bits } from '../bits.js';
import { recvChecked } from '../wire.js';

export interface Combine {
  /** Node indices in the previous level (hi is the more significant). */
  hi: number;
  lo: number;
  /** The combined node's eq is needed later (a correlated pair of triples instead of one triple). */
  eq: boolean;
}

export interface CompareShape {
  bits: number;
  digit: number;
  /** Messages per leaf OT. */
  N: number;
  leaves: number;
  /** Per leaf (least significant first): whether its eq is needed. */
  leafEq: boolean[];
  /** Per level: the combines (new node k = combine k) and, for an odd count, the top node passed through last. */
  levels: { combines: Combine[]; pass: number | null }[];
  /** Triple units (one per combine, in level order). */
  units: number;
}

const cache = new Map<string, CompareShape>();

export function compareShape(bits: number, digit = 4): CompareShape {
  if (!Number.isInteger(bits) || bits < 1 || bits > 63)
    throw new Error(`millionaire: ${bits} compared bits must be an integer in [1, 63]`);
  if (!Number.isInteger(digit) || digit < 1 || digit > 4)
    throw new Error(`millionaire: digit of ${digit} bits must be 1..4 (1-out-of-2 .. 1-out-of-16 leaves)`);
  const key = `${bits}/${digit}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const leaves = Math.ceil(bits / digit);
  const levels: CompareShape['levels'] = [];
  for (let count = leaves; count > 1; count = Math.ceil(count / 2)) {
    const combines: Combine[] = [];
    for (let k = 0; 2 * k + 1 < count; k++) combines.push({ hi: 2 * k + 1, lo: 2 * k, eq: false });
    levels.push({ combines, pass: count % 2 ? count - 1 : null });
  }
  // Which nodes need eq, from the root down: a node needs eq if it is a `hi` or part of a combine that needs eq.
  let need = [false]; // the root
  for (let l = levels.length - 1; l >= 0; l--) {
    const { combines, pass } = levels[l]!;
    const below = new Array<boolean>(2 * combines.length + (pass === null ? 0 : 1)).fill(false);
    combines.forEach((c, k) => {
      c.eq = need[k]!;
      below[c.hi] = true;
      below[c.lo] = c.eq;
    });
    if (pass !== null) below[pass] = need[combines.length]!;
    need = below;
  }
  const shape: CompareShape = {
    bits,
    digit,
    N: 1 << digit,
    leaves,
    leafEq: need,
    levels,
    units: levels.reduce((a, l) => a + l.combines.length, 0),
  };
  cache.set(key, shape);
  return shape;
}

export interface TripleShares {
  a: Bits;
  b: Bits;
  c: Bits;
  b2: Bits | null;
  c2: Bits | null;
}

export interface MillServerCorr {
  n: number;
  /** Per leaf: the server's random shares. */
  gt: Bits[];
  eq: (Bits | null)[];
  /** Per leaf, per element: the KK13 pads of the N messages, gt pads in bits 0..N-1, eq pads in bits N..2N-1. */
  pads: Uint32Array[];
  triples: TripleShares[];
}

export interface MillClientCorr {
  n: number;
  /** Per leaf: the client's KK13 pad bits of its chosen message (gt, eq). */
  pgt: Bits[];
  peq: (Bits | null)[];
  triples: TripleShares[];
}

/** The digits of every value, leaf-major (digit j of value i at j * n + i; bits [j*d, (j+1)*d), cut at `bits`). */
function digits(x: R64, shape: CompareShape): Uint8Array {
  const n = x.lo.length,
    { leaves, digit: d, bits } = shape,
    out = new Uint8Array(leaves * n);
  for (let j = 0; j < leaves; j++) {
    const pos = j * d,
      mask = (1 << Math.min(d, bits - pos)) - 1,
      o = j * n;
    if (pos >= 32) for (let i = 0; i < n; i++) out[o + i] = (x.hi[i]! >>> (pos - 32)) & mask;
    else if (pos + d <= 32) for (let i = 0; i < n; i++) out[o + i] = (x.lo[i]! >>> pos) & mask;
    else for (let i = 0; i < n; i++) out[o + i] = ((x.lo[i]! >>> pos) | (x.hi[i]! << (32 - pos))) & mask;
  }
  return out;
}

const randomBits = (rand: Random, n: number) => clampBits(randomBitWords(rand, n), n);

/** Bit k of byte 0 of each 16-byte pad o = first + i, i < n, as a packed vector. */
function padBits(pads: Uint8Array, first: number, n: number, k: number): Bits {
  const v = new Uint32Array(bitWords(n));
  for (let i = 0; i < n; i++) v[i >>> 5] |= ((pads[16 * (first + i)]! >>> k) & 1) << (i & 31);
  return v;
}

function and(x: Bits, y: Bits): Bits {
  const o = new Uint32Array(x.length);
  for (let w = 0; w < x.length; w++) o[w] = x[w]! & y[w]!;
  return o;
}

function xor3(x: Bits, y: Bits, z: Bits): Bits {
  const o = new Uint32Array(x.length);
  for (let w = 0; w < x.length; w++) o[w] = x[w]! ^ y[w]! ^ z[w]!;
  return o;
}

/**
 * One unit's triple shares from its random OTs: s0, s1 = this party's two pads as sender (b = s0 ⊕ s1), r = its pad
 * as receiver with choice a. c = a b ⊕ s0 ⊕ r: the other party's s0' ⊕ r' is a·b' ⊕ ..., so c ⊕ c' = (a ⊕ a')(b ⊕ b').
 */
function unitTriples(
  a: Bits,
  s0: Uint8Array,
  s1: Uint8Array,
  r: Uint8Array,
  first: number,
  n: number,
  pair: boolean,
): TripleShares {
  const one = (k: number) => {
    const m0 = padBits(s0, first, n, k),
      b = xorBits(m0, padBits(s1, first, n, k));
    return { b, c: xor3(and(a, b), m0, padBits(r, first, n, k)) };
  };
  const t0 = one(0),
    t1 = pair ? one(1) : null;
  return { a, b: t0.b, c: t0.c, b2: t1?.b ?? null, c2: t1?.c ?? null };
}

/** Random OTs per triple unit and direction: one per element, each unit padded to whole words. */
export const tripleOts = (shape: CompareShape, n: number) => shape.units * 32 * bitWords(n);

/** Triple shares from this party's random OTs: `a` its choices as receiver, r its pads, s0 / s1 its pads as sender. */
function triplesFrom(
  shape: CompareShape,
  n: number,
  a: Bits,
  r: Uint8Array,
  s0: Uint8Array,
  s1: Uint8Array,
): TripleShares[] {
  const W = bitWords(n),
    P = 32 * W,
    out: TripleShares[] = [];
  let u = 0;
  for (const l of shape.levels)
    for (const c of l.combines) {
      out.push(unitTriples(clampBits(a.slice(u * W, (u + 1) * W), n), s0, s1, r, u * P, n, c.eq));
      u++;
    }
  return out;
}

interface LeafPads {
  pgt: Bits[];
  peq: (Bits | null)[];
}

/** The client's pad bits per leaf from one byte per leaf OT (bit 0: gt, bit 1: eq), OT j·n + i for leaf j, value i. */
function leafPadBits(shape: CompareShape, n: number, p: Uint8Array): LeafPads {
  const pgt: Bits[] = [],
    peq: (Bits | null)[] = [];
  for (let j = 0; j < shape.leaves; j++) {
    const g = new Uint32Array(bitWords(n)),
      e = new Uint32Array(bitWords(n));
    for (let i = 0; i < n; i++) {
      const b = p[j * n + i]!;
      g[i >>> 5] |= (b & 1) << (i & 31);
      e[i >>> 5] |= ((b >>> 1) & 1) << (i & 31);
    }
    pgt.push(g);
    peq.push(shape.leafEq[j] ? e : null);
  }
  return { pgt, peq };
}

/** The first step of the offline part: this party's OT matrices, sent at once; `millionaireReceive` completes it. */
export interface MillPending {
  role: 'server' | 'client';
  n: number;
  /** Choices (the a's of the triples) and pads as receiver in this party's IKNP receiver extension. */
  a: Bits;
  r: Promise<Uint8Array> | null;
  /** Client: its leaf OTs' pad bits (gt, eq) per leaf (a promise when the leaf OTs run on the session's COTs). */
  leaf: LeafPads | Promise<LeafPads> | null;
}

/**
 * Offline, step 1 (sends, never waits): the server its triples' receiver matrix (IKNP B); the client the leaves'
 * KK13 matrix with its digits of y as choices, then its triples' receiver matrix (IKNP A).
 */
export function millionaireSend(
  ots: OtSession,
  shape: CompareShape,
  role: 'server' | 'client',
  n: number,
  y?: R64,
): MillPending {
  let leaf: MillPending['leaf'] = null;
  if (role === 'client') {
    const kk = ots.kkReceiver;
    if ((!kk && !ots.leaves) || !y)
      throw new Error('millionaire: the client needs the leaf OT receiver of the OT session and its values y');
    if (y.lo.length !== n) throw new Error(`millionaire: ${y.lo.length} values for ${n} comparisons`);
    const { N, leaves: L } = shape;
    const ch = digits(y, shape);
    leaf = ots.leaves
      ? ots.leaves.receivePads(ch, L * n, N, 2).then((p) => leafPadBits(shape, n, p))
      : leafPadBits(shape, n, kk!.pads(kk!.extend(ch, L * n, N), 1));
    if (leaf instanceof Promise) leaf.catch(() => {});
  } else if (!ots.kkSender && !ots.leaves)
    throw new Error('millionaire: the server needs the leaf OT sender of the OT session');
  const m = tripleOts(shape, n),
    a = randomBits(ots.random, m);
  const r = m ? ots.receiver.receiveRandom(new Uint8Array(a.buffer, 0, m >>> 3), m) : null;
  // Awaited in millionaireReceive; if an earlier step fails first, its failure is the one reported.
  r?.catch(() => {});
  return { role, n, a, r, leaf };
}

/**
 * Offline, step 2 (receives): the server the leaves' KK13 matrix and the triples' (IKNP A), the client the triples'
 * (IKNP B); returns this party's correlations for `compare`.
 */
export async function millionaireReceive(
  ots: OtSession,
  shape: CompareShape,
  p: MillPending,
): Promise<MillServerCorr | MillClientCorr> {
  const n = p.n,
    { N, leaves: L } = shape;
  let leaves: { pads: Uint32Array[]; gt: Bits[]; eq: (Bits | null)[] } | null = null;
  if (p.role === 'server') {
    const planes = ots.leaves
      ? await ots.leaves.sendPlanes(L * n, N, 2)
      : await ots.kkSender!.padPlanesShared(await ots.kkSender!.extend(L * n), N, 2, ots.kkHelper ?? null);
    const pads: Uint32Array[] = [];
    for (let j = 0; j < L; j++) {
      const v = new Uint32Array(n);
      for (let i = 0, o = 2 * j * n; i < n; i++, o += 2) v[i] = planes[o]! | (planes[o + 1]! << N);
      pads.push(v);
    }
    leaves = {
      pads,
      gt: Array.from({ length: L }, () => randomBits(ots.random, n)),
      eq: shape.leafEq.map((e) => (e ? randomBits(ots.random, n) : null)),
    };
  }
  const m = tripleOts(shape, n);
  let triples: TripleShares[] = [];
  if (m) {
    const { m0, m1 } = await ots.sender.sendRandom(m);
    triples = triplesFrom(shape, n, p.a, await p.r!, m0, m1);
  }
  return leaves ? { n, ...leaves, triples } : { n, ...(await p.leaf!), triples };
}

/** Offline, server: both steps (KK13 pads for every leaf, its random leaf shares, the triples). */
export async function millionaireOfflineServer(
  ots: OtSession,
  shape: CompareShape,
  n: number,
): Promise<MillServerCorr> {
  return (await millionaireReceive(ots, shape, millionaireSend(ots, shape, 'server', n))) as MillServerCorr;
}

/** Offline, client: both steps (KK13 with its digits of y as choices, the triples). */
export async function millionaireOfflineClient(ots: OtSession, shape: CompareShape, y: R64): Promise<MillClientCorr> {
  return (await millionaireReceive(
    ots,
    shape,
    millionaireSend(ots, shape, 'client', y.lo.length, y),
  )) as MillClientCorr;
}

interface Node {
  gt: Bits;
  eq: Bits | null;
}

/** Word sizes of the online messages. */
function tableWords(shape: CompareShape, n: number): number {
  const per = Math.ceil((n * shape.N) / 32);
  return shape.leafEq.reduce((a, e) => a + (e ? 2 : 1) * per, 0);
}
const openingWords = (shape: CompareShape, level: number, n: number) =>
  shape.levels[level - 1]!.combines.reduce((a, c) => a + (c.eq ? 3 : 2), 0) * bitWords(n);

/** Words of each online flight of `compare` on n values, F1 (server) first; odd flights go server -> client. */
export function onlineFlightWords(shape: CompareShape, n: number): number[] {
  const L = shape.levels.length,
    out: number[] = [];
  for (let f = 1; f <= L + 1; f++)
    out.push(
      (f === 1 ? tableWords(shape, n) : 0) +
        (f >= 2 ? openingWords(shape, f - 1, n) : 0) +
        (f <= L ? openingWords(shape, f, n) : 0),
    );
  return out;
}

/** This party's openings of `level` (1-based): per combine d = eq_hi ⊕ a, e = gt_lo ⊕ b (, e2 = eq_lo ⊕ b2). */
function opening(
  shape: CompareShape,
  level: number,
  nodes: Node[],
  triples: TripleShares[],
  unit0: number,
  W: number,
): Uint32Array {
  const cs = shape.levels[level - 1]!.combines,
    out = new Uint32Array(cs.reduce((a, c) => a + (c.eq ? 3 : 2), 0) * W);
  let o = 0;
  cs.forEach((c, k) => {
    const t = triples[unit0 + k]!,
      hi = nodes[c.hi]!,
      lo = nodes[c.lo]!;
    for (let w = 0; w < W; w++) out[o + w] = hi.eq![w]! ^ t.a[w]!;
    for (let w = 0; w < W; w++) out[o + W + w] = lo.gt[w]! ^ t.b[w]!;
    o += 2 * W;
    if (c.eq) {
      for (let w = 0; w < W; w++) out[o + w] = lo.eq![w]! ^ t.b2![w]!;
      o += W;
    }
  });
  return out;
}

/** Completes `level` from both parties' openings: z = c ⊕ D b ⊕ E a (⊕ D E for the server). */
function complete(
  shape: CompareShape,
  level: number,
  nodes: Node[],
  triples: TripleShares[],
  unit0: number,
  W: number,
  mine: Uint32Array,
  theirs: Uint32Array,
  server: boolean,
): Node[] {
  const { combines, pass } = shape.levels[level - 1]!;
  const out: Node[] = [];
  let o = 0;
  combines.forEach((c, k) => {
    const t = triples[unit0 + k]!,
      hi = nodes[c.hi]!;
    const gt = new Uint32Array(W),
      eq = c.eq ? new Uint32Array(W) : null;
    for (let w = 0; w < W; w++) {
      const D = mine[o + w]! ^ theirs[o + w]!,
        E = mine[o + W + w]! ^ theirs[o + W + w]!;
      gt[w] = hi.gt[w]! ^ t.c[w]! ^ (D & t.b[w]!) ^ (E & t.a[w]!) ^ (server ? D & E : 0);
      if (eq) {
        const E2 = mine[o + 2 * W + w]! ^ theirs[o + 2 * W + w]!;
        eq[w] = t.c2![w]! ^ (D & t.b2![w]!) ^ (E2 & t.a[w]!) ^ (server ? D & E2 : 0);
      }
    }
    o += (c.eq ? 3 : 2) * W;
    out.push({ gt, eq });
  });
  if (pass !== null) out.push(nodes[pass]!);
  return out;
}

/** The server's leaf tables: per leaf N bits of gt per element, then (if needed) N bits of eq. */
function leafTables(shape: CompareShape, corr: MillServerCorr, x: R64): Uint32Array {
  const { N } = shape,
    n = corr.n,
    per = Math.ceil((n * N) / 32),
    k = 32 / N;
  const out = new Uint32Array(tableWords(shape, n)),
    xd = digits(x, shape);
  const maskN = (1 << N) - 1;
  let base = 0;
  for (let j = 0; j < shape.leaves; j++) {
    const pads = corr.pads[j]!,
      gt0 = corr.gt[j]!,
      eq0 = corr.eq[j],
      o = j * n,
      eqBase = base + per;
    // k = 32 / N elements per output word, accumulated in registers and stored once.
    for (let w = 0; w < per; w++) {
      let g = 0,
        e = 0;
      for (let q = 0, i = w * k; q < k && i < n; q++, i++) {
        const d = xd[o + i]!,
          p = pads[i]!,
          sw = i >>> 5,
          sb = i & 31;
        g |= ((((1 << d) - 1) ^ -((gt0[sw]! >>> sb) & 1) ^ p) & maskN) << (q * N);
        if (eq0) e |= (((1 << d) ^ -((eq0[sw]! >>> sb) & 1) ^ (p >>> N)) & maskN) << (q * N);
      }
      out[base + w] = g;
      if (eq0) out[eqBase + w] = e;
    }
    base += eq0 ? 2 * per : per;
  }
  return out;
}

/** The client's leaf shares from the tables: bit y_j of each chunk ⊕ its pad bit. */
function leafShares(shape: CompareShape, corr: MillClientCorr, y: R64, tables: Uint32Array): Node[] {
  const { N } = shape,
    n = corr.n,
    per = Math.ceil((n * N) / 32),
    W = bitWords(n),
    yd = digits(y, shape);
  const nodes: Node[] = [];
  let base = 0;
  for (let j = 0; j < shape.leaves; j++) {
    const hasEq = shape.leafEq[j]!,
      pg = corr.pgt[j]!,
      pe = hasEq ? corr.peq[j]! : null,
      o = j * n;
    const gt = new Uint32Array(W),
      eq = hasEq ? new Uint32Array(W) : null;
    // 32 elements' bits accumulated in registers per output word.
    for (let w = 0; w < W; w++) {
      let g = 0,
        e = 0;
      for (let q = 0, i = 32 * w; q < 32 && i < n; q++, i++) {
        const bit = i * N + yd[o + i]!,
          tw = bit >>> 5,
          sh = bit & 31;
        g |= ((tables[base + tw]! >>> sh) & 1) << q;
        if (eq) e |= ((tables[base + per + tw]! >>> sh) & 1) << q;
      }
      gt[w] = g ^ pg[w]!;
      if (eq) eq[w] = e ^ pe![w]!;
    }
    nodes.push({ gt: clampBits(gt, n), eq: eq && clampBits(eq, n) });
    base += hasEq ? 2 * per : per;
  }
  return nodes;
}

const concat = (parts: Uint32Array[]): Uint8Array => new Uint8Array(concatWords(parts).buffer);

async function recvWords(ch: Channel, what: string, words: number): Promise<Uint32Array> {
  const m = await recvChecked(ch, what, 4 * words);
  const a = (m.byteOffset & 3) === 0 ? m : m.slice();
  return new Uint32Array(a.buffer, a.byteOffset, words);
}

/**
 * Online, either party: runs the flights and returns this party's XOR share of [x > y] (packed, n bits).
 * The server passes x (its values), the client y (the values it used offline); `what` prefixes error messages.
 */
export async function compare(
  ch: Channel,
  role: 'server' | 'client',
  shape: CompareShape,
  corr: MillServerCorr | MillClientCorr,
  v: R64,
  what: string,
): Promise<Bits> {
  const n = corr.n,
    W = bitWords(n),
    L = shape.levels.length,
    server = role === 'server';
  if (v.lo.length !== n) throw new Error(`${what}: ${v.lo.length} values for ${n} prepared comparisons`);
  const unit0 = [0];
  for (const l of shape.levels) unit0.push(unit0[unit0.length - 1]! + l.combines.length);
  const triples = corr.triples;
  let nodes: Node[] | null = server
    ? (corr as MillServerCorr).gt.map((gt, j) => ({ gt, eq: (corr as MillServerCorr).eq[j]! }))
    : null;
  const mine: Uint32Array[] = [],
    theirs: Uint32Array[] = [];
  for (let f = 1; f <= L + 1; f++) {
    if ((f % 2 === 1) === server) {
      const parts: Uint32Array[] = [];
      if (f === 1) parts.push(leafTables(shape, corr as MillServerCorr, v));
      if (f >= 2) {
        mine[f - 1] = opening(shape, f - 1, nodes!, triples, unit0[f - 2]!, W);
        parts.push(mine[f - 1]!);
        nodes = complete(shape, f - 1, nodes!, triples, unit0[f - 2]!, W, mine[f - 1]!, theirs[f - 1]!, server);
      }
      if (f <= L) {
        mine[f] = opening(shape, f, nodes!, triples, unit0[f - 1]!, W);
        parts.push(mine[f]!);
      }
      ch.send(concat(parts));
    } else {
      const tw = f === 1 ? tableWords(shape, n) : 0,
        ow = f >= 2 ? openingWords(shape, f - 1, n) : 0,
        nw = f <= L ? openingWords(shape, f, n) : 0;
      const msg = await recvWords(ch, `${what}: comparison flight ${f}`, tw + ow + nw);
      if (f === 1) nodes = leafShares(shape, corr as MillClientCorr, v, msg.subarray(0, tw));
      if (f >= 2) {
        theirs[f - 1] = msg.subarray(tw, tw + ow);
        nodes = complete(shape, f - 1, nodes!, triples, unit0[f - 2]!, W, mine[f - 1]!, theirs[f - 1]!, server);
      }
      if (f <= L) theirs[f] = msg.subarray(tw + ow);
    }
  }
  return nodes![0]!.gt;
}

/** The party that sends the comparison's last flight (and so knows its share first). */
export const lastSender = (shape: CompareShape): 'server' | 'client' =>
  shape.levels.length % 2 === 0 ? 'server' : 'client';
