// Fixed-point values in the ring Z_2^64, stored as two uint32 words per element (struct of arrays, the layout of
// ring.ts splitRing / garble.ts decodeSplit). All arithmetic wraps mod 2^64; the signed reading is two's complement.
//
// Truncation (rescaling by 2^-d) comes in three flavours:
// - exact floor on the value (the plaintext reference and, inside the garbled circuit, the ReLU sites);
// - local truncation of additive shares (SecureML): the server shifts its share s logically, the client computes
//   -((-c) >> d). If v = s + c with |v| < 2^l and c uniform, the result is floor(v / 2^d) or floor(v / 2^d) + 1,
//   except with probability about 2^(l+1-64) per element (when s + c wraps), where it is off by about 2^(64-d).

export interface R64 {
  lo: Uint32Array;
  hi: Uint32Array;
}

const TWO32 = 4294967296;

export const r64Zeros = (n: number): R64 => ({ lo: new Uint32Array(n), hi: new Uint32Array(n) });

export const r64Clone = (a: R64): R64 => ({ lo: a.lo.slice(), hi: a.hi.slice() });

/** Elements [a, b) of `x`, sharing its memory. */
export const r64Slice = (x: R64, a: number, b: number): R64 => ({ lo: x.lo.subarray(a, b), hi: x.hi.subarray(a, b) });

function check2(a: R64, b: R64, what: string): void {
  if (a.lo.length !== b.lo.length) throw new Error(`${what}: lengths ${a.lo.length} and ${b.lo.length} differ`);
}

export function r64Add(a: R64, b: R64, what = 'r64Add'): R64 {
  check2(a, b, what);
  const n = a.lo.length;
  const { lo, hi } = r64Zeros(n);
  for (let i = 0; i < n; i++) {
    const s = a.lo[i] + b.lo[i];
    lo[i] = s;
    hi[i] = a.hi[i] + b.hi[i] + (s >= TWO32 ? 1 : 0);
  }
  return { lo, hi };
}

export function r64Sub(a: R64, b: R64, what = 'r64Sub'): R64 {
  check2(a, b, what);
  const n = a.lo.length;
  const { lo, hi } = r64Zeros(n);
  for (let i = 0; i < n; i++) {
    const s = a.lo[i] - b.lo[i];
    lo[i] = s;
    hi[i] = a.hi[i] - b.hi[i] - (s < 0 ? 1 : 0);
  }
  return { lo, hi };
}

export function r64Neg(a: R64): R64 {
  const n = a.lo.length;
  const { lo, hi } = r64Zeros(n);
  for (let i = 0; i < n; i++) {
    lo[i] = -a.lo[i];
    hi[i] = ~a.hi[i] + (a.lo[i] === 0 ? 1 : 0);
  }
  return { lo, hi };
}

/** a * 2^d mod 2^64 (exact rescaling up, e.g. to align the two inputs of a residual add). */
export function r64Shl(a: R64, d: number): R64 {
  checkShift(d, 'r64Shl');
  const n = a.lo.length;
  if (d === 0) return r64Clone(a);
  const { lo, hi } = r64Zeros(n);
  if (d < 32) {
    for (let i = 0; i < n; i++) {
      hi[i] = (a.hi[i] << d) | (a.lo[i] >>> (32 - d));
      lo[i] = a.lo[i] << d;
    }
  } else {
    for (let i = 0; i < n; i++) hi[i] = a.lo[i] << (d - 32);
  }
  return { lo, hi };
}

function checkShift(d: number, what: string): void {
  if (!Number.isInteger(d) || d < 0 || d > 63) throw new Error(`${what}: shift ${d} must be an integer in [0, 63]`);
}

/** Logical shift right (the value read as unsigned). */
export function r64Shr(a: R64, d: number): R64 {
  checkShift(d, 'r64Shr');
  const n = a.lo.length;
  if (d === 0) return r64Clone(a);
  const { lo, hi } = r64Zeros(n);
  if (d < 32) {
    for (let i = 0; i < n; i++) {
      lo[i] = (a.lo[i] >>> d) | (a.hi[i] << (32 - d));
      hi[i] = a.hi[i] >>> d;
    }
  } else {
    for (let i = 0; i < n; i++) lo[i] = a.hi[i] >>> (d - 32);
  }
  return { lo, hi };
}

/** Arithmetic shift right: floor(v / 2^d) of the signed value (exact truncation, the reference). */
export function r64Sar(a: R64, d: number): R64 {
  checkShift(d, 'r64Sar');
  const n = a.lo.length;
  if (d === 0) return r64Clone(a);
  const { lo, hi } = r64Zeros(n);
  if (d < 32) {
    for (let i = 0; i < n; i++) {
      lo[i] = (a.lo[i] >>> d) | (a.hi[i] << (32 - d));
      hi[i] = (a.hi[i] | 0) >> d;
    }
  } else {
    for (let i = 0; i < n; i++) {
      lo[i] = (a.hi[i] | 0) >> (d - 32);
      hi[i] = (a.hi[i] | 0) >> 31;
    }
  }
  return { lo, hi };
}

/** The server's half of local share truncation (SecureML): its share read as unsigned, shifted. */
export const truncServerShare = (s: R64, d: number): R64 => r64Shr(s, d);

/** The client's half of local share truncation: -((-c) >> d). */
export const truncClientShare = (c: R64, d: number): R64 => (d === 0 ? r64Clone(c) : r64Neg(r64Shr(r64Neg(c), d)));

/** Ring elements from integer doubles (|v| < 2^53; negatives wrap). */
export function r64FromInts(v: ArrayLike<number>, what = 'r64FromInts'): R64 {
  const n = v.length;
  const { lo, hi } = r64Zeros(n);
  for (let i = 0; i < n; i++) {
    const x = v[i];
    if (!Number.isSafeInteger(x)) throw new Error(`${what}: value[${i}] = ${x} is not an integer in (-2^53, 2^53)`);
    lo[i] = x >>> 0;
    hi[i] = Math.floor(x / TWO32) >>> 0;
  }
  return { lo, hi };
}

/** round(x * 2^scale) as ring elements; throws if a value does not fit 2^53. */
export function quantize(x: ArrayLike<number>, scale: number, what = 'quantize'): R64 {
  const p = 2 ** scale;
  const ints = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) ints[i] = Math.round(x[i] * p);
  return r64FromInts(ints, what);
}

/** Signed value of each element as a double (exact when |v| < 2^53). */
export function r64Signed(a: R64): Float64Array {
  const n = a.lo.length,
    out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (a.hi[i] | 0) * TWO32 + a.lo[i];
  return out;
}

/** Signed value / 2^scale (fixed-point decode). */
export function dequantize(a: R64, scale: number): Float64Array {
  const out = r64Signed(a),
    p = 2 ** -scale;
  for (let i = 0; i < out.length; i++) out[i] *= p;
  return out;
}

/** v mod 2^w as doubles (w <= 53): the low bits a garbled circuit of width w reads. */
export function r64Low(a: R64, w: number): Float64Array {
  if (!Number.isInteger(w) || w < 1 || w > 53) throw new Error(`r64Low: width ${w} must be in [1, 53]`);
  const n = a.lo.length,
    out = new Float64Array(n);
  const hm = w <= 32 ? 0 : 2 ** (w - 32) - 1,
    lm = w >= 32 ? TWO32 : 2 ** w;
  for (let i = 0; i < n; i++) out[i] = (a.hi[i] & hm) * TWO32 + (w >= 32 ? a.lo[i] : a.lo[i] % lm);
  return out;
}

/** Largest |v| over the signed values, as log2 bits (0 for all-zero). */
export function r64MaxBits(a: R64): number {
  let m = 0;
  for (let i = 0; i < a.lo.length; i++) {
    const v = Math.abs((a.hi[i] | 0) * TWO32 + a.lo[i]);
    if (v > m) m = v;
  }
  return m === 0 ? 0 : Math.floor(Math.log2(m)) + 1;
}

export function r64ToBig(a: R64): BigInt64Array {
  const out = new BigInt64Array(a.lo.length);
  for (let i = 0; i < out.length; i++) out[i] = BigInt.asIntN(64, (BigInt(a.hi[i]) << 32n) | BigInt(a.lo[i]));
  return out;
}

export function r64FromBig(v: ArrayLike<bigint>): R64 {
  const n = v.length;
  const { lo, hi } = r64Zeros(n);
  for (let i = 0; i < n; i++) {
    const u = BigInt.asUintN(64, v[i]);
    lo[i] = Number(u & 0xffffffffn);
    hi[i] = Number(u >> 32n);
  }
  return { lo, hi };
}

/** 8 bytes per element, little-endian (lo word, hi word): the wire format of shares. */
export function r64ToBytes(a: R64): Uint8Array {
  const n = a.lo.length,
    w = new Uint32Array(2 * n);
  for (let i = 0; i < n; i++) {
    w[2 * i] = a.lo[i];
    w[2 * i + 1] = a.hi[i];
  }
  return new Uint8Array(w.buffer);
}

export function r64FromBytes(b: Uint8Array, n: number, what: string): R64 {
  if (b.byteLength !== 8 * n)
    throw new Error(`${what}: expected ${8 * n} bytes (${n} ring elements), got ${b.byteLength}`);
  const a = (b.byteOffset & 3) === 0 ? b : b.slice();
  const w = new Uint32Array(a.buffer, a.byteOffset, 2 * n);
  const { lo, hi } = r64Zeros(n);
  for (let i = 0; i < n; i++) {
    lo[i] = w[2 * i];
    hi[i] = w[2 * i + 1];
  }
  return { lo, hi };
}

/** The elements of `a` at `idx` (a partial ReLU site's kept elements), in index order. */
export function r64Gather(a: R64, idx: Uint32Array): R64 {
  const n = idx.length;
  const { lo, hi } = r64Zeros(n);
  for (let k = 0; k < n; k++) {
    const i = idx[k]!;
    lo[k] = a.lo[i]!;
    hi[k] = a.hi[i]!;
  }
  return { lo, hi };
}

/** Writes `v` (one element per index) into `into` at `idx`, in place; returns `into`. */
export function r64Scatter(into: R64, idx: Uint32Array, v: R64): R64 {
  if (v.lo.length !== idx.length) throw new Error(`r64Scatter: ${v.lo.length} values for ${idx.length} indices`);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    into.lo[i] = v.lo[k]!;
    into.hi[i] = v.hi[k]!;
  }
  return into;
}
