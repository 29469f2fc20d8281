// 128 x m bit-matrix transpose in 32-bit words (IKNP turns 128 columns of m bits into m rows of 128 bits).
// Bit order is little-endian throughout: bit j of a column is bit (j & 31) of word j >>> 5; row j's bit i is
// bit (i & 31) of its word i >>> 5.

/** In-place transpose of a 32x32 bit block held in a[0..31] (a[r] bit c <-> a[c] bit r). */
function transpose32(a: Int32Array): void {
  let j = 16, m = 0x0000ffff;
  for (; j !== 0; j >>>= 1, m ^= m << j) {
    for (let k = 0; k < 32; k = (k + j + 1) & ~j) {
      const t = ((a[k] >>> j) ^ a[k + j]) & m;
      a[k] ^= t << j;
      a[k + j] ^= t;
    }
  }
}

/**
 * cols: 128 columns of m bits each, column i at words [i*m/32, (i+1)*m/32). m must be a multiple of 32.
 * Returns m rows of 128 bits (4 words each), row j at words [4j, 4j+4).
 */
export function transpose128(cols: Int32Array, m: number): Int32Array {
  if (m % 32 !== 0) throw new Error(`transpose128: m=${m} must be a multiple of 32`);
  const wpc = m >>> 5;
  if (cols.length < 128 * wpc) throw new Error(`transpose128: ${cols.length} words hold fewer than 128 columns of ${m} bits`);
  const rows = new Int32Array(4 * m);
  const blk = new Int32Array(32);
  for (let W = 0; W < 4; W++) {
    for (let V = 0; V < wpc; V++) {
      let p = (32 * W) * wpc + V;
      for (let r = 0; r < 32; r++, p += wpc) blk[r] = cols[p];
      transpose32(blk);
      let q = 128 * V + W;
      for (let c = 0; c < 32; c++, q += 4) rows[q] = blk[c];
    }
  }
  return rows;
}
