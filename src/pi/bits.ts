// Packed bit vectors (one bit per element, e.g. XOR shares of a comparison over a batch): bit i is bit (i & 31) of
// word i >>> 5, i.e. bit i & 7 of byte i >>> 3 on the wire (the little-endian packing of the OT choice bits).
// Word-parallel XOR / AND evaluate 32 elements per operation; unused high bits of the last word are kept zero.
import { malformed } from './transport/errors.js';
import type { Random } from './random.js';

export type Bits = Uint32Array;

export const bitWords = (n: number): number => (n + 31) >>> 5;

export const newBits = (n: number): Bits => new Uint32Array(bitWords(n));

export const getBit = (v: Bits, i: number): number => (v[i >>> 5]! >>> (i & 31)) & 1;

export function setBit(v: Bits, i: number, b: number): void {
  if (b) v[i >>> 5] |= 1 << (i & 31);
  else v[i >>> 5] &= ~(1 << (i & 31));
}

/** Whole words of random bits for n elements from `rand` (the bits at and above n are not cleared: clampBits). */
export function randomBitWords(rand: Random, n: number): Bits {
  const w = bitWords(n),
    b = rand.bytes(4 * w);
  return new Uint32Array(
    (b.byteOffset & 3) === 0 && b.byteLength === 4 * w
      ? b.buffer.slice(b.byteOffset, b.byteOffset + 4 * w)
      : b.slice().buffer,
  );
}

/** Clears the bits at and above n (after filling whole words with random or complemented bits). */
export function clampBits(v: Bits, n: number): Bits {
  if (n & 31) v[n >>> 5] &= (1 << (n & 31)) - 1;
  return v;
}

export function xorBits(a: Bits, b: Bits): Bits {
  const o = new Uint32Array(a.length);
  for (let w = 0; w < a.length; w++) o[w] = a[w]! ^ b[w]!;
  return o;
}

/** The bytes as 32-bit words (a copy when they are not 4-byte aligned). */
export function i32(u8: Uint8Array): Int32Array {
  const a = (u8.byteOffset & 3) === 0 ? u8 : u8.slice();
  return new Int32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

function concatInto<T extends Uint8Array | Uint32Array>(out: T, parts: readonly T[]): T {
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
const total = (parts: readonly ArrayLike<number>[]) => parts.reduce((a, p) => a + p.length, 0);
/** The arrays end to end in one new array (chunks of words or bits joined, parts of a message). */
export const concatWords = (parts: readonly Uint32Array[]): Uint32Array =>
  concatInto(new Uint32Array(total(parts)), parts);
export const concatBytes = (parts: readonly Uint8Array[]): Uint8Array =>
  concatInto(new Uint8Array(total(parts)), parts);

/** The bytes of a bit vector of n elements (ceil(n / 8) bytes), for sending. */
export const bitsBytes = (v: Bits, n: number): Uint8Array =>
  new Uint8Array(v.buffer, v.byteOffset, (n + 7) >>> 3).slice();

/** A received bit vector of n elements; `what` names the message in errors (MALFORMED). High bits beyond n must be zero. */
export function bitsFromBytes(b: Uint8Array, n: number, what: string): Bits {
  const len = (n + 7) >>> 3;
  if (b.byteLength !== len) throw malformed(`${what}: expected ${len} bytes (${n} bits), got ${b.byteLength}`);
  const v = newBits(n);
  new Uint8Array(v.buffer).set(b);
  if (n & 7 && b[len - 1]! >>> (n & 7)) throw malformed(`${what}: bits set beyond the ${n} elements`);
  return v;
}
