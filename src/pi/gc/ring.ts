// Conversions between ring elements of Z_2^k and bits. Values are given as
// Float64Array / number[] (integers, |v| < 2^53, so k <= 53 on output), Uint32Array / Int32Array (k <= 32),
// BigUint64Array / BigInt64Array, or RingWords {lo, hi} (32-bit halves; k <= 64). Inputs are reduced mod 2^k
// (negative numbers wrap).
export interface RingWords {
  lo: Uint32Array;
  hi: Uint32Array;
}
export type RingValues =
  | Float64Array
  | readonly number[]
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | RingWords;

const isWords = (v: RingValues): v is RingWords => !(ArrayBuffer.isView(v) || Array.isArray(v));

/** Number of ring elements in `values`. */
export function ringLength(values: RingValues): number {
  if (isWords(values)) {
    if (values.lo.length !== values.hi.length)
      throw new Error(`ring values: lo has ${values.lo.length} words, hi ${values.hi.length}`);
    return values.lo.length;
  }
  return values.length;
}

export function checkRingBits(k: number, what: string): void {
  if (!Number.isInteger(k) || k < 2 || k > 64)
    throw new Error(`${what}: ring bit width k=${k} must be an integer in [2, 64]`);
}

const TWO32 = 4294967296;

/** v mod 2^k split into low / high 32-bit words. */
export function splitRing(values: RingValues, k: number): { lo: Uint32Array; hi: Uint32Array } {
  checkRingBits(k, 'splitRing');
  const n = ringLength(values);
  const lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  if (isWords(values)) {
    lo.set(values.lo);
    hi.set(values.hi);
  } else if (values instanceof BigUint64Array || values instanceof BigInt64Array) {
    // Little-endian 64-bit words: read the halves without BigInt arithmetic.
    const w = new Uint32Array(values.buffer, values.byteOffset, 2 * n);
    for (let i = 0; i < n; i++) {
      lo[i] = w[2 * i];
      hi[i] = w[2 * i + 1];
    }
  } else if (values instanceof Uint32Array || values instanceof Int32Array) {
    for (let i = 0; i < n; i++) lo[i] = values[i];
    // Int32Array values are sign-extended to 64 bits before reduction mod 2^k.
    if (values instanceof Int32Array) for (let i = 0; i < n; i++) hi[i] = values[i] < 0 ? 0xffffffff : 0;
  } else {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (!Number.isInteger(v) || Math.abs(v) > Number.MAX_SAFE_INTEGER) {
        throw new Error(`splitRing: value[${i}] = ${v} is not an integer in (-2^53, 2^53); use a BigInt64Array`);
      }
      lo[i] = v >>> 0;
      hi[i] = Math.floor(v / TWO32) >>> 0;
    }
  }
  if (k < 32) {
    const m = (1 << k) - 1;
    for (let i = 0; i < n; i++) {
      lo[i] &= m;
      hi[i] = 0;
    }
  } else if (k < 64) {
    const m = k === 32 ? 0 : 0xffffffff >>> (64 - k);
    for (let i = 0; i < n; i++) hi[i] &= m;
  }
  return { lo, hi };
}

/** Ring elements in [0, 2^k) as exact doubles (k <= 53). */
export function joinRing(lo: Uint32Array, hi: Uint32Array, k: number): Float64Array {
  if (k > 53) throw new Error(`joinRing: k=${k} > 53 does not fit a double exactly; use joinRingBig`);
  const out = new Float64Array(lo.length);
  for (let i = 0; i < lo.length; i++) out[i] = hi[i] * TWO32 + lo[i];
  return out;
}

export function joinRingBig(lo: Uint32Array, hi: Uint32Array): BigUint64Array {
  const out = new BigUint64Array(lo.length);
  const w = new Uint32Array(out.buffer);
  for (let i = 0; i < lo.length; i++) {
    w[2 * i] = lo[i];
    w[2 * i + 1] = hi[i];
  }
  return out;
}

/** Bit j of value i at bit index j*n + i (wire-major, the order of input labels and OT choices). */
export function ringToBits(values: RingValues, k: number): Uint8Array {
  const n = ringLength(values);
  const x = splitRing(values, k);
  const out = new Uint8Array(Math.ceil((k * n) / 8));
  packBits(x, k, out, 0);
  return out;
}

/** The low k bits of each value (split into lo/hi words), wire-major from bit `offset` on: ORed into packed `out`. */
export function packBits(x: { lo: Uint32Array; hi: Uint32Array }, k: number, out: Uint8Array, offset: number): void {
  const n = x.lo.length;
  for (let j = 0; j < k; j++) {
    const src = j < 32 ? x.lo : x.hi,
      sh = j & 31;
    for (let i = 0; i < n; i++) {
      const idx = offset + j * n + i;
      out[idx >>> 3]! |= ((src[i]! >>> sh) & 1) << (idx & 7);
    }
  }
}

/** Inverse of ringToBits. */
export function bitsToRing(bits: Uint8Array, k: number, n: number): { lo: Uint32Array; hi: Uint32Array } {
  if (bits.length * 8 < k * n) throw new Error(`bitsToRing: ${bits.length} bytes hold fewer than ${k}x${n} bits`);
  const lo = new Uint32Array(n),
    hi = new Uint32Array(n);
  for (let j = 0; j < k; j++) {
    const dst = j < 32 ? lo : hi,
      sh = j & 31;
    for (let i = 0; i < n; i++) {
      const idx = j * n + i;
      dst[i] |= ((bits[idx >>> 3] >>> (idx & 7)) & 1) << sh;
    }
  }
  return { lo, hi };
}
