// 128 x m bit-matrix transpose (IKNP turns 128 columns of m bits into m rows of 128 bits), run by the
// WebAssembly SIMD kernel tr128 on slices of columns so that module memory stays small.
// Bit order is little-endian throughout: bit j of a column is bit (j & 31) of word j >>> 5; row j's bit i is
// bit (i & 31) of its word i >>> 5.
import { gcKernels } from '../crypto/simd.js';

/** Column words per slice: 128 x 16 KB in, 2 MB of rows out. */
const SLICE_WORDS = 4096;

/**
 * cols: 128 columns of m bits each, column i at words [i*m/32, (i+1)*m/32). m must be a multiple of 32.
 * Returns m rows of 128 bits (4 words each), row j at words [4j, 4j+4), in `into` when given (reused memory is
 * faster than fresh: first touches of new pages are slow here).
 */
export function transpose128(cols: Int32Array, m: number, into?: Int32Array): Int32Array {
  if (m % 32 !== 0) throw new Error(`transpose128: m=${m} must be a multiple of 32`);
  const wpc = m >>> 5;
  if (cols.length < 128 * wpc)
    throw new Error(`transpose128: ${cols.length} words hold fewer than 128 columns of ${m} bits`);
  if (into && into.length < 4 * m) throw new Error(`transpose128: output of ${into.length} words for ${m} rows`);
  const rows = into ?? new Int32Array(4 * m);
  const K = gcKernels();
  const S = Math.min(SLICE_WORDS, wpc);
  const IN = 64,
    OUT = IN + 128 * S * 4;
  K.ensure(OUT + 128 * S * 4);
  const mem = K.i32;
  for (let v0 = 0; v0 < wpc; v0 += S) {
    const sl = Math.min(S, wpc - v0);
    for (let i = 0; i < 128; i++) mem.set(cols.subarray(i * wpc + v0, i * wpc + v0 + sl), (IN >>> 2) + i * sl);
    K.tr128(IN, OUT, sl);
    rows.set(mem.subarray(OUT >>> 2, (OUT >>> 2) + 128 * sl), 128 * v0);
  }
  return rows;
}
