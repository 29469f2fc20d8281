// LPN parameters and the local linear code of the silent OT (ferret.ts). An output COT i is
//   x_i = e_i ⊕ ⊕_{l<d} u[idx(i, l)]     (and the same sum on the 128-bit keys),
// u the k base COTs' choice bits, e a regular noise vector (t blocks of 2^h positions, one 1 per block), idx a public
// random code with d = 10 nonzeros per output column (Ferret's local code, Yang-Weng-Lan-Zhang-Wang CCS 2020).
// Security: the parameter sets are emp-ot's published ones (emp-toolkit/emp-ot, emp-ot/ferret/constants.h; the sets
// after its revision for the newer attacks on regular-noise LPN), checked in test/pi/silent-params.test.ts against
// that table and against the Gaussian-elimination estimate below (a floor, not the full attack landscape).
import { cryptoBackend } from '../crypto/backend.js';
import { Prg } from '../crypto/prg.js';
import { lpnKernel } from '../crypto/simd.js';

export interface LpnParams {
  /** Name (and the public code's seed). */
  readonly name: string;
  /** Output COTs per round (n = t · 2^h). */
  readonly n: number;
  /** LPN secret length (base COTs for the code). */
  readonly k: number;
  /** Noise weight: t blocks of 2^h positions, one noisy position each. */
  readonly t: number;
  /** log2 of the noise block (GGM tree depth). */
  readonly h: number;
  /** Nonzeros per code column. */
  readonly d: number;
}

/** A published parameter set, with where it comes from. */
export interface PublishedLpn extends LpnParams {
  readonly source: string;
}

const EMP = 'emp-toolkit/emp-ot emp-ot/ferret/constants.h';

/** Published regular-noise parameter sets for 128-bit security (d = 10, as in their code). */
export const PUBLISHED_LPN: readonly PublishedLpn[] = [
  { name: 'emp-ot REG', n: 10_608_640, k: 589_824, t: 1_295, h: 13, d: 10, source: `${EMP}: N_REG, K_REG, T_REG` },
  {
    name: 'emp-ot PRIMAL_RD2',
    n: 607_232,
    k: 69_454,
    t: 593,
    h: 10,
    d: 10,
    source: `${EMP}: N_REG_PRIMAL_RD2, K_REG_PRIMAL_RD2, T_REG_PRIMAL_RD2`,
  },
  {
    name: 'emp-ot PRIMAL_RD1',
    n: 75_520,
    k: 8_911,
    t: 590,
    h: 7,
    d: 10,
    source: `${EMP}: N_REG_PRIMAL_RD1, K_REG_PRIMAL_RD1, T_REG_PRIMAL_RD1`,
  },
];

/**
 * The sets the silent OT runs: one bootstrap round on RD1 (its 13,041 base COTs from IKNP), then RD2 rounds, each
 * seeded by 75,384 COTs of the previous round (531,848 net COTs per round). RD2 rather than REG: 10 MB of keys per
 * round instead of 170 MB (the browser client holds them too), at 0.37 B per COT instead of 0.05.
 */
export const SILENT_BOOT: LpnParams = PUBLISHED_LPN[2]!;
export const SILENT_MAIN: LpnParams = PUBLISHED_LPN[1]!;

/** Base COTs a round consumes: t·h for the GGM trees' levels, then k for the code. */
export const baseCount = (p: LpnParams): number => p.t * p.h + p.k;

/** The round's one message (sender -> receiver): per tree and level two masked sums, and one final block. */
export const roundMessageBytes = (p: LpnParams): number => 16 * p.t * (2 * p.h + 1);

/** Checks the shape every round relies on (n = t · 2^h, enough output to seed the next round of `next`). */
export function checkParams(p: LpnParams, next: LpnParams = p): void {
  const ok =
    [p.n, p.k, p.t, p.h, p.d].every((v) => Number.isInteger(v) && v >= 1) &&
    p.h <= 20 &&
    p.n === p.t * 2 ** p.h &&
    p.d <= p.k &&
    p.n >= baseCount(next);
  if (!ok) throw new Error(`LPN parameters ${p.name}: n=${p.n} k=${p.k} t=${p.t} h=${p.h} d=${p.d} are not usable`);
}

/**
 * log2 of the cost of the Gaussian-elimination (Prange / pooled Gauss) attack on the primal LPN instance: k^2.8 bit
 * operations per guess of k noise-free samples, each guess right with probability C(n−t, k) / C(n, k). A sanity floor:
 * the published sets also account for ISD variants, the low-weight parity-check attack and the algebraic attacks on
 * regular noise, which this formula does not model.
 */
export function gaussSecurityBits(p: LpnParams): number {
  let logP = 0; // ln C(n−t, k) / C(n, k) = Σ_{i<t} ln((n−k−i) / (n−i))
  for (let i = 0; i < p.t; i++) logP += Math.log((p.n - p.k - i) / (p.n - i));
  return 2.8 * Math.log2(p.k) - logP / Math.LN2;
}

const codes = new Map<string, Int32Array>();

/**
 * The public code of `p`: d indices in [0, k) per output (n·d words), from AES-CTR on a seed hashed from the set's
 * name. Reduction mod k of 32-bit words biases an index by < k / 2^32, irrelevant for a public random code.
 * Cached (24 MB for RD2).
 */
export function lpnCode(p: LpnParams): Int32Array {
  const key = `${p.name}/${p.n}/${p.k}/${p.d}`;
  const hit = codes.get(key);
  if (hit) return hit;
  const seed = cryptoBackend.sha256('deepreduce/pi/silent-ot/code', key).slice(0, 16);
  const idx = new Int32Array(p.n * p.d);
  new Prg(seed).fill(new Uint8Array(idx.buffer));
  const k = p.k;
  for (let i = 0; i < idx.length; i++) idx[i] = (idx[i]! >>> 0) % k;
  codes.set(key, idx);
  return idx;
}

/**
 * out_i ^= ⊕_l base[idx(i, l)] on 16-byte blocks (4 words each), i < n: the WebAssembly SIMD kernel (the code's table
 * stays in its memory between rounds), in slices of outputs.
 */
export function lpnEncodeBlocks(idx: Int32Array, d: number, base: Int32Array, out: Int32Array, n: number): void {
  if (idx.length < n * d || out.length < 4 * n)
    throw new Error(`lpnEncode: ${idx.length} indices, ${out.length} words for n=${n}`);
  const K = lpnKernel(),
    tb = 4 * idx.length,
    bb = base.byteLength,
    S = 1 << 16;
  K.ensure(tb + bb + 16 * Math.min(S, n));
  if (K.table !== idx) {
    K.i32.set(idx);
    K.table = idx;
  }
  K.i32.set(base, tb >>> 2);
  const ob = tb + bb;
  for (let s = 0; s < n; s += S) {
    const m = Math.min(S, n - s);
    K.i32.set(out.subarray(4 * s, 4 * (s + m)), ob >>> 2);
    K.lpnenc(ob, 4 * s * d, tb, m, d);
    out.set(K.i32.subarray(ob >>> 2, (ob >>> 2) + 4 * m), 4 * s);
  }
}

/** lpnEncodeBlocks in plain JS (the reference the kernel is tested against). */
export function lpnEncodeBlocksJs(idx: Int32Array, d: number, base: Int32Array, out: Int32Array, n: number): void {
  for (let i = 0, q = 0; i < n; i++) {
    let a = out[4 * i]!,
      b = out[4 * i + 1]!,
      c = out[4 * i + 2]!,
      e = out[4 * i + 3]!;
    for (let l = 0; l < d; l++, q++) {
      const j = 4 * idx[q]!;
      a ^= base[j]!;
      b ^= base[j + 1]!;
      c ^= base[j + 2]!;
      e ^= base[j + 3]!;
    }
    out[4 * i] = a;
    out[4 * i + 1] = b;
    out[4 * i + 2] = c;
    out[4 * i + 3] = e;
  }
}

/** out_i ^= ⊕_l u[idx(i, l)] on bits (one byte 0/1 each), i < n. */
export function lpnEncodeBits(idx: Int32Array, d: number, u: Uint8Array, out: Uint8Array, n: number): void {
  for (let i = 0, q = 0; i < n; i++) {
    let a = out[i]!;
    for (let l = 0; l < d; l++, q++) a ^= u[idx[q]!]!;
    out[i] = a;
  }
}
