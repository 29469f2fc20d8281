// Wire formats of the HE messages, with validation on receipt. Every message starts with a 16-byte header
// (u32 little-endian: parameter set id, kind, plan op, count) and packs its values as little-endian bit strings:
//   public key (client -> server, once): header (op = NO_OP, count 1) | seed of a' (16) | p0: L x n residues, 30 bits
//   upload (client -> server, per layer): header (count = ciphertexts) | packing th, tw, cw, on (4 x u32) | seed (16)
//                                        | per ciphertext c0: L x n residues, 30 bits (NTT domain)
//   responses (server -> client, one message per output group): header (count = ciphertexts) | first index (u32)
//                                        | per ciphertext: c1 (n values of c1Bits), then the kept c0 values (c0Bits),
//                                          each part padded to a whole byte with zero bits
// A receiver checks the length, the header, every residue (< its prime) and the padding bits, and names the message
// and the fault in its error.
import type { HeParams } from './params.js';
import type { Packing } from './layout.js';

export const HE_KIND = { publicKey: 1, upload: 2, responses: 3 } as const;
export const NO_OP = 0xffffffff;
const HEADER = 16;
const RESIDUE_BITS = 30;

export const residueBytes = (p: HeParams) => (p.primes.length * p.n * RESIDUE_BITS) / 8;
export const wideBytes = (count: number, bits: number) => Math.ceil((count * bits) / 8);

/** Message sizes: the public key, an upload of `count` ciphertexts, and responses keeping kept[j] coefficients each. */
export const publicKeyBytes = (p: HeParams) => HEADER + 16 + residueBytes(p);
export const uploadBytes = (p: HeParams, count: number) => HEADER + 32 + count * residueBytes(p);
export const responsesBytes = (p: HeParams, kept: readonly number[]) =>
  HEADER + 4 + kept.reduce((s, k) => s + wideBytes(p.n, p.c1Bits) + wideBytes(k, p.c0Bits), 0);

class BitWriter {
  readonly words: Uint32Array;
  pos = 0;
  constructor(bytes: number) {
    this.words = new Uint32Array(Math.ceil(bytes / 4) + 1);
  }
  u32(v: number): void {
    this.bits(v >>> 0, 32);
  }
  bytes(b: Uint8Array): void {
    for (const x of b) this.bits(x, 8);
  }
  /** Appends the low `b` bits of v (b <= 32). */
  bits(v: number, b: number): void {
    const w = this.pos >>> 5,
      o = this.pos & 31;
    this.words[w] |= v << o;
    if (o + b > 32) this.words[w + 1] |= v >>> (32 - o);
    this.pos += b;
  }
  align(): void {
    this.pos = (this.pos + 7) & ~7;
  }
  /** Values of `bits` bits (<= 96) given as 3 u32 limbs each. */
  wide(limbs: Uint32Array, bits: number): void {
    for (let j = 0; j < limbs.length; j += 3) {
      this.bits(limbs[j]!, Math.min(32, bits));
      if (bits > 32) this.bits(limbs[j + 1]!, Math.min(32, bits - 32));
      if (bits > 64) this.bits(limbs[j + 2]!, bits - 64);
    }
    this.align();
  }
  /** Residues (< 2^30 each): the bits of `bits` calls, through one accumulator word (no read-modify-write). */
  residues(r: Uint32Array): void {
    const words = this.words;
    let w = this.pos >>> 5,
      o = this.pos & 31,
      acc = words[w]! & ((1 << o) - 1);
    for (let j = 0; j < r.length; j++) {
      const v = r[j]!;
      acc |= v << o;
      o += RESIDUE_BITS;
      if (o >= 32) {
        words[w++] = acc;
        o -= 32;
        acc = o ? v >>> (RESIDUE_BITS - o) : 0;
      }
    }
    if (o) words[w] = acc;
    this.pos += RESIDUE_BITS * r.length;
    this.align();
  }
  finish(): Uint8Array {
    return new Uint8Array(this.words.buffer, 0, this.pos >>> 3);
  }
}

class BitReader {
  private readonly words: Uint32Array;
  pos = 0;
  constructor(
    msg: Uint8Array,
    private readonly what: string,
  ) {
    // A word-aligned message is read in place (reads past its end give 0, as the copy's spare word did).
    if ((msg.byteOffset & 3) === 0 && (msg.length & 3) === 0)
      this.words = new Uint32Array(msg.buffer, msg.byteOffset, msg.length >>> 2);
    else {
      this.words = new Uint32Array(Math.ceil(msg.length / 4) + 1);
      new Uint8Array(this.words.buffer).set(msg);
    }
  }
  bits(b: number): number {
    const w = this.pos >>> 5,
      o = this.pos & 31;
    let v = this.words[w]! >>> o;
    if (o + b > 32) v |= this.words[w + 1]! << (32 - o);
    this.pos += b;
    return b === 32 ? v >>> 0 : (v & ((1 << b) - 1)) >>> 0;
  }
  u32(): number {
    return this.bits(32);
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.bits(8));
  }
  align(): void {
    const pad = (8 - (this.pos & 7)) & 7;
    if (pad && this.bits(pad) !== 0) throw new Error(`${this.what}: non-zero padding bits at byte ${this.pos >>> 3}`);
  }
  wide(count: number, bits: number): Uint32Array {
    const out = new Uint32Array(3 * count);
    for (let j = 0; j < count; j++) {
      out[3 * j] = this.bits(Math.min(32, bits));
      if (bits > 32) out[3 * j + 1] = this.bits(Math.min(32, bits - 32));
      if (bits > 64) out[3 * j + 2] = this.bits(bits - 64);
    }
    this.align();
    return out;
  }
  /** L x n residues, each checked against its prime. */
  residues(p: HeParams, what: string): Uint32Array {
    const { n, primes } = p,
      out = new Uint32Array(primes.length * n);
    const words = this.words;
    let w = this.pos >>> 5,
      o = this.pos & 31;
    for (let i = 0; i < primes.length; i++) {
      const q = primes[i]!;
      for (let k = 0; k < n; k++) {
        // the next 30 bits, as bits(30) reads them
        let v = words[w]! >>> o;
        if (o > 32 - RESIDUE_BITS) v |= words[w + 1]! << (32 - o);
        v = (v & 0x3fffffff) >>> 0;
        o += RESIDUE_BITS;
        if (o >= 32) {
          o -= 32;
          w++;
        }
        if (v >= q) throw new Error(`${what}: coefficient ${k} of prime ${i} is ${v}, not below the modulus ${q}`);
        out[i * n + k] = v;
      }
    }
    this.pos = 32 * w + o;
    this.align();
    return out;
  }
}

function header(w: BitWriter, p: HeParams, kind: number, op: number, count: number): void {
  w.u32(p.id);
  w.u32(kind);
  w.u32(op);
  w.u32(count);
}

/** Checks the header; returns a reader past it and the count (1..maxCount). */
function head(
  msg: Uint8Array,
  p: HeParams,
  kind: number,
  op: number,
  what: string,
  maxCount: number,
): { r: BitReader; count: number } {
  if (msg.length < HEADER) throw new Error(`${what}: ${msg.length} bytes, shorter than the ${HEADER}-byte header`);
  const r = new BitReader(msg, what);
  const id = r.u32(),
    k = r.u32(),
    o = r.u32(),
    count = r.u32();
  if (id !== p.id) throw new Error(`${what}: parameter set ${id.toString(16)}, expected ${p.id.toString(16)}`);
  if (k !== kind) throw new Error(`${what}: message kind ${k}, expected ${kind}`);
  if (o !== op) throw new Error(`${what}: for plan op ${o}, expected ${op}`);
  if (count < 1 || count > maxCount) throw new Error(`${what}: ${count} ciphertexts, expected 1..${maxCount}`);
  return { r, count };
}

function checkLength(msg: Uint8Array, want: number, count: number, what: string): void {
  if (msg.length !== want)
    throw new Error(`${what}: ${msg.length} bytes, expected ${want} for ${count} ciphertext${count === 1 ? '' : 's'}`);
}

export function writePublicKey(p: HeParams, seed: Uint8Array, p0: Uint32Array): Uint8Array {
  const w = new BitWriter(publicKeyBytes(p));
  header(w, p, HE_KIND.publicKey, NO_OP, 1);
  w.bytes(seed);
  w.residues(p0);
  return w.finish();
}

export function readPublicKey(msg: Uint8Array, p: HeParams, what: string): { seed: Uint8Array; p0: Uint32Array } {
  const { r } = head(msg, p, HE_KIND.publicKey, NO_OP, what, 1);
  checkLength(msg, publicKeyBytes(p), 1, what);
  const seed = r.bytes(16);
  return { seed, p0: r.residues(p, what) };
}

export function writeUpload(
  p: HeParams,
  op: number,
  pk: Packing,
  seed: Uint8Array,
  c0s: readonly Uint32Array[],
): Uint8Array {
  const w = new BitWriter(uploadBytes(p, c0s.length));
  header(w, p, HE_KIND.upload, op, c0s.length);
  for (const v of [pk.th, pk.tw, pk.cw, pk.on]) w.u32(v);
  w.bytes(seed);
  for (const c of c0s) w.residues(c);
  return w.finish();
}

/** Reads an upload's header and packing; `cts(packing)` validates the packing and returns the expected count. */
export function readUpload(
  msg: Uint8Array,
  p: HeParams,
  op: number,
  what: string,
  cts: (pk: Packing) => number,
): { pk: Packing; seed: Uint8Array; c0s: Uint32Array[] } {
  const { r, count } = head(msg, p, HE_KIND.upload, op, what, 2 ** 20);
  if (msg.length < HEADER + 32)
    throw new Error(`${what}: ${msg.length} bytes, shorter than its ${HEADER + 32}-byte header`);
  const pk = { th: r.u32(), tw: r.u32(), cw: r.u32(), on: r.u32() };
  const expect = cts(pk);
  if (count !== expect) throw new Error(`${what}: ${count} ciphertexts, the packing needs ${expect}`);
  checkLength(msg, uploadBytes(p, count), count, what);
  const seed = r.bytes(16);
  const c0s: Uint32Array[] = [];
  for (let j = 0; j < count; j++) c0s.push(r.residues(p, `${what}: ciphertext ${j}`));
  return { pk, seed, c0s };
}

export interface ResponseCts {
  /** c1 limbs (3 per coefficient, n coefficients) and the kept c0 limbs (3 per kept coefficient). */
  c1: Uint32Array;
  c0: Uint32Array;
}

export function writeResponses(p: HeParams, op: number, first: number, cts: readonly ResponseCts[]): Uint8Array {
  const len = responsesBytes(
    p,
    cts.map((c) => c.c0.length / 3),
  );
  const w = new BitWriter(len);
  header(w, p, HE_KIND.responses, op, cts.length);
  w.u32(first);
  for (const c of cts) {
    w.wide(c.c1, p.c1Bits);
    w.wide(c.c0, p.c0Bits);
  }
  return w.finish();
}

/** Reads responses first..first+count-1 of a layer; kept(j) = kept coefficients of response j. */
export function readResponses(
  msg: Uint8Array,
  p: HeParams,
  op: number,
  what: string,
  first: number,
  maxCount: number,
  kept: (j: number) => number,
): ResponseCts[] {
  const { r, count } = head(msg, p, HE_KIND.responses, op, what, maxCount);
  let len = HEADER + 4;
  for (let j = first; j < first + count; j++) len += wideBytes(p.n, p.c1Bits) + wideBytes(kept(j), p.c0Bits);
  checkLength(msg, len, count, what);
  const f = r.u32();
  if (f !== first) throw new Error(`${what}: starts at ciphertext ${f}, expected ${first}`);
  const out: ResponseCts[] = [];
  for (let j = first; j < first + count; j++) out.push({ c1: r.wide(p.n, p.c1Bits), c0: r.wide(kept(j), p.c0Bits) });
  return out;
}
