// Fixed-key AES-128 (a public random permutation π) and the tweakable correlation-robust hash
// H(x, t) = π(σ(x) ⊕ t) ⊕ σ(x) ⊕ t  (Guo-Katz-Wang-Yu 2020, as in emp-toolkit's half-gates),
// where σ(xL || xR) = (xL ⊕ xR) || xL is a linear orthomorphism on 64-bit halves.
//
// Blocks are 16 bytes, handled as 4 little-endian uint32 words w0..w3 (w0 = low word).
// xR = (w0, w1), xL = (w2, w3), so σ(x) = (w2, w3, w2 ^ w0, w3 ^ w1).
// The backend (node:crypto in Node, @noble/ciphers in the browser) is called once per batch: one call on thousands of
// blocks runs ~200x faster than per block in node:crypto.
import { cryptoBackend } from './backend.js';

export { FIXED_KEY } from './fixedkey.js';

/** Largest batch (in blocks) handed to OpenSSL at once; ~16K blocks is the measured sweet spot. */
export const AES_BATCH_BLOCKS = 16384;

function asWords(buf: Uint8Array): Int32Array {
  if ((buf.byteOffset & 3) === 0) return new Int32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  return new Int32Array(buf.slice().buffer);
}

/**
 * π applied to `nBlocks` blocks of `words` (4 words per block, starting at word 0).
 * Returns a fresh array (neither backend has an in-place variant).
 */
export function fixedKeyAes(words: Int32Array | Uint32Array, nBlocks: number = words.length >>> 2): Int32Array {
  if (nBlocks * 4 > words.length)
    throw new Error(`fixedKeyAes: ${nBlocks} blocks requested but input holds ${words.length >>> 2}`);
  const bytes = new Uint8Array(words.buffer, words.byteOffset, nBlocks * 16);
  return asWords(cryptoBackend.fixedKeyAes(bytes));
}

/** π on whole 16-byte blocks of `bytes` (e.g. a view into WebAssembly memory); returns a fresh array. */
export function fixedKeyAesBytes(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength % 16)
    throw new Error(`fixedKeyAesBytes: ${bytes.byteLength} bytes is not a whole number of blocks`);
  return cryptoBackend.fixedKeyAes(bytes);
}

/** Tweak domains keep the garbling and OT hash inputs disjoint even under one Δ. */
export const DOMAIN_GC = 0x47430000;
export const DOMAIN_OT = 0x4f540000;

/**
 * Batched tweakable CR hash: out[j] = H(x[j], (t0 + j, t1, t2, domain)) for j < n.
 * `t0 + j` is taken mod 2^32 per block; callers keep (t0 + j, t1, t2) unique per hash use.
 * `out` may alias `x`.
 */
export function crHashBatch(
  x: Int32Array,
  out: Int32Array,
  n: number,
  t0: number,
  t1: number,
  t2: number,
  domain: number,
): void {
  if (x.length < 4 * n || out.length < 4 * n)
    throw new Error(`crHashBatch: need ${4 * n} words, got x=${x.length} out=${out.length}`);
  const u = new Int32Array(4 * Math.min(n, AES_BATCH_BLOCKS));
  for (let s = 0; s < n; s += AES_BATCH_BLOCKS) {
    const m = Math.min(AES_BATCH_BLOCKS, n - s);
    for (let j = 0; j < m; j++) {
      const p = 4 * (s + j),
        q = 4 * j;
      const w0 = x[p],
        w1 = x[p + 1],
        w2 = x[p + 2],
        w3 = x[p + 3];
      u[q] = w2 ^ (t0 + s + j);
      u[q + 1] = w3 ^ t1;
      u[q + 2] = w2 ^ w0 ^ t2;
      u[q + 3] = w3 ^ w1 ^ domain;
    }
    const e = fixedKeyAes(u, m);
    for (let j = 0; j < m; j++) {
      const p = 4 * (s + j),
        q = 4 * j;
      out[p] = e[q] ^ u[q];
      out[p + 1] = e[q + 1] ^ u[q + 1];
      out[p + 2] = e[q + 2] ^ u[q + 2];
      out[p + 3] = e[q + 3] ^ u[q + 3];
    }
  }
}
