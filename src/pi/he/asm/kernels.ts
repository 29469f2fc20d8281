// WebAssembly kernels of the RLWE scheme (src/pi/he), in AssemblyScript: compiled by scripts/build-he-wasm.mjs into
// src/pi/he/wasm.ts (the bytes, so that Node and the browser load them the same way). This file is not part of the
// TypeScript build (tsconfig excludes src/pi/he/asm).
//
// All pointers are byte offsets into the module's memory, managed by the caller (kernels.ts). A polynomial over L
// primes is L blocks of n u32 residues (prime-major). Primes are below 2^30, so that lazy values in [0, 4p) fit in a
// u32 lane and every product of two residues fits in 64 bits (WebAssembly has no 64x64 -> 128 multiply).
// Modular products by a constant w use Shoup's method with w' = floor(w * 2^32 / p): for any y < 2^32,
// w * y - floor(w' * y / 2^32) * p lies in [0, 2p).

// ------------------------------------------------------------------------------------------------ helpers

@inline function mulhi(a: v128, b: v128): v128 {
  return i32x4.shuffle(i64x2.extmul_low_i32x4_u(a, b), i64x2.extmul_high_i32x4_u(a, b), 1, 3, 5, 7);
}

/** w * y mod p in [0, 2p) for y < 2^32 (lanes). */
@inline function shoupV(w: v128, wp: v128, y: v128, p: v128): v128 {
  return i32x4.sub(i32x4.mul(w, y), i32x4.mul(mulhi(wp, y), p));
}

/** x - m if x >= m else x (lanes, x < 2m + 2^31). */
@inline function csub(x: v128, m: v128): v128 {
  return i32x4.min_u(x, i32x4.sub(x, m));
}

@inline function shoup(w: u32, wp: u32, y: u32, p: u32): u32 {
  return w * y - <u32>((<u64>wp * <u64>y) >> 32) * p;
}

@inline function red1(x: u32, p: u32): u32 {
  return x >= p ? x - p : x;
}

// ------------------------------------------------------------------------------------------------ NTT
// Negacyclic NTT of size n (a power of two >= 16) modulo p, psi a primitive 2n-th root of unity. Forward: Cooley-
// Tukey with the powers of psi merged in (natural order in, bit-reversed order out); inverse: Gentleman-Sande
// (bit-reversed in, natural out), then the factor 1/n. Lazy reduction (Harvey): values stay in [0, 4p) inside.
// Table of one prime and direction (3n u32): w[n] (w[k] = psi^bitrev(k), inverse: psi^-bitrev(k)), w'[n] (Shoup),
// then for the stage with pairs 2 apart each twiddle twice (w, then w'), n/2 each.

export function nttForward(a: usize, tab: usize, n: i32, p: u32): void {
  const P = i32x4.splat(p), P2 = i32x4.splat(p << 1);
  const tabp = tab + (<usize>n << 2);
  let t = n;
  for (let m = 1; m < n >> 2; m <<= 1) {
    t >>= 1;
    const off = <usize>t << 2;
    for (let i = 0; i < m; i++) {
      const W = v128.load32_splat(tab + (<usize>(m + i) << 2));
      const Wp = v128.load32_splat(tabp + (<usize>(m + i) << 2));
      let x = a + (<usize>(2 * i * t) << 2);
      const end = x + off;
      for (; x < end; x += 16) {
        const X = csub(v128.load(x), P2);
        const T = shoupV(W, Wp, v128.load(x + off), P);
        v128.store(x, i32x4.add(X, T));
        v128.store(x + off, i32x4.add(i32x4.sub(X, T), P2));
      }
    }
  }
  // pairs 2 apart: [X0 X1 Y0 Y1] per twiddle
  const d = tab + (<usize>(2 * n) << 2), dp = d + (<usize>(n >> 1) << 2);
  for (let i = 0; i < n >> 2; i += 2) {
    const x = a + (<usize>i << 4);
    const v0 = v128.load(x), v1 = v128.load(x + 16);
    const X = csub(i32x4.shuffle(v0, v1, 0, 1, 4, 5), P2);
    const T = shoupV(v128.load(d + (<usize>i << 3)), v128.load(dp + (<usize>i << 3)), i32x4.shuffle(v0, v1, 2, 3, 6, 7), P);
    const A = i32x4.add(X, T), B = i32x4.add(i32x4.sub(X, T), P2);
    v128.store(x, i32x4.shuffle(A, B, 0, 1, 4, 5));
    v128.store(x + 16, i32x4.shuffle(A, B, 2, 3, 6, 7));
  }
  // adjacent pairs, and the final reduction to [0, p)
  const h = n >> 1;
  for (let i = 0; i < h; i += 4) {
    const x = a + (<usize>i << 3);
    const v0 = v128.load(x), v1 = v128.load(x + 16);
    const X = csub(i32x4.shuffle(v0, v1, 0, 2, 4, 6), P2);
    const T = shoupV(v128.load(tab + (<usize>(h + i) << 2)), v128.load(tabp + (<usize>(h + i) << 2)), i32x4.shuffle(v0, v1, 1, 3, 5, 7), P);
    const A = csub(csub(i32x4.add(X, T), P2), P), B = csub(csub(i32x4.add(i32x4.sub(X, T), P2), P2), P);
    v128.store(x, i32x4.shuffle(A, B, 0, 4, 1, 5));
    v128.store(x + 16, i32x4.shuffle(A, B, 2, 6, 3, 7));
  }
}

/** Inverse NTT; input in [0, 2p), output in [0, p). ninv = n^-1 mod p, ninvp its Shoup constant. */
export function nttInverse(a: usize, tab: usize, n: i32, p: u32, ninv: u32, ninvp: u32): void {
  const P = i32x4.splat(p), P2 = i32x4.splat(p << 1);
  const tabp = tab + (<usize>n << 2);
  // adjacent pairs (m = n): twiddles w[n/2 + i]
  const h = n >> 1;
  for (let i = 0; i < h; i += 4) {
    const x = a + (<usize>i << 3);
    const v0 = v128.load(x), v1 = v128.load(x + 16);
    const X = i32x4.shuffle(v0, v1, 0, 2, 4, 6), Y = i32x4.shuffle(v0, v1, 1, 3, 5, 7);
    const A = csub(i32x4.add(X, Y), P2);
    const B = shoupV(v128.load(tab + (<usize>(h + i) << 2)), v128.load(tabp + (<usize>(h + i) << 2)), i32x4.add(i32x4.sub(X, Y), P2), P);
    v128.store(x, i32x4.shuffle(A, B, 0, 4, 1, 5));
    v128.store(x + 16, i32x4.shuffle(A, B, 2, 6, 3, 7));
  }
  // pairs 2 apart (m = n/2): twiddles w[n/4 + i], duplicated
  const d = tab + (<usize>(2 * n) << 2), dp = d + (<usize>(n >> 1) << 2);
  for (let i = 0; i < n >> 2; i += 2) {
    const x = a + (<usize>i << 4);
    const v0 = v128.load(x), v1 = v128.load(x + 16);
    const X = i32x4.shuffle(v0, v1, 0, 1, 4, 5), Y = i32x4.shuffle(v0, v1, 2, 3, 6, 7);
    const A = csub(i32x4.add(X, Y), P2);
    const B = shoupV(v128.load(d + (<usize>i << 3)), v128.load(dp + (<usize>i << 3)), i32x4.add(i32x4.sub(X, Y), P2), P);
    v128.store(x, i32x4.shuffle(A, B, 0, 1, 4, 5));
    v128.store(x + 16, i32x4.shuffle(A, B, 2, 3, 6, 7));
  }
  let t = 4;
  for (let m = n >> 2; m > 1; m >>= 1) {
    const hm = m >> 1, off = <usize>t << 2;
    for (let i = 0; i < hm; i++) {
      const W = v128.load32_splat(tab + (<usize>(hm + i) << 2));
      const Wp = v128.load32_splat(tabp + (<usize>(hm + i) << 2));
      let x = a + (<usize>(2 * i * t) << 2);
      const end = x + off;
      for (; x < end; x += 16) {
        const X = v128.load(x), Y = v128.load(x + off);
        v128.store(x, csub(i32x4.add(X, Y), P2));
        v128.store(x + off, shoupV(W, Wp, i32x4.add(i32x4.sub(X, Y), P2), P));
      }
    }
    t <<= 1;
  }
  const NI = i32x4.splat(ninv), NIp = i32x4.splat(ninvp);
  const end = a + (<usize>n << 2);
  for (let x = a; x < end; x += 16) v128.store(x, csub(shoupV(NI, NIp, v128.load(x), P), P));
}

// ------------------------------------------------------------------------------------------------ products

/** Folds 64-bit lanes (lo: coefficients 0,1; hi: 2,3) to [0, p): x = H 2^32 + L -> H (2^32 mod p) + L mod p. */
@inline function fold64(lo: v128, hi: v128, P: v128, R: v128, Rp: v128, Op: v128): v128 {
  const L = i32x4.shuffle(lo, hi, 0, 2, 4, 6), H = i32x4.shuffle(lo, hi, 1, 3, 5, 7);
  const s = i32x4.add(shoupV(R, Rp, H, P), shoupV(i32x4.splat(1), Op, L, P));
  return csub(csub(s, i32x4.shl(P, 1)), P);
}

/** Coefficients per block of `dot`: its accumulators (2 x 8 bytes each) stay in the L1 cache. */
const BLOCK: usize = 256;

/**
 * Dot products in the NTT domain, one prime: out0 = sum_g x0_g * k_g, out1 = sum_g x1_g * k_g (mod p), for `count`
 * triples of pointers (x0_g, x1_g, k_g) at `ptrs` (u32 each); out1 = 0 skips the second output. Residues in [0, p).
 * Products (< 2^60) are summed in 64-bit lanes, 15 at a time (plus the running residue) before folding. The loop
 * runs over blocks of coefficients, each term's block read in one sweep: interleaving the terms per coefficient
 * touched dozens of streams whose addresses agree mod 4 KiB (polynomials are 32 KiB apart), which the L1 cache's
 * sets cannot hold (10x slower). `acc`: scratch of 2 x BLOCK x 8 bytes. r32 = 2^32 mod p; r32p, onep: Shoup
 * constants of r32 and 1.
 */
export function dot(out0: usize, out1: usize, ptrs: usize, count: i32, n: i32, p: u32, r32: u32, r32p: u32, onep: u32, acc: usize): void {
  const P = i32x4.splat(p), R = i32x4.splat(r32), Rp = i32x4.splat(r32p), Op = i32x4.splat(onep);
  const two = out1 != 0;
  const acc1 = acc + BLOCK * 8;
  for (let b = 0; b < n; b += BLOCK) {
    const ob = <usize>b << 2;
    memory.fill(acc, 0, BLOCK * 16);
    for (let g0 = 0; g0 < count; g0 += 15) {
      const g1 = min(count, g0 + 15);
      for (let g = g0; g < g1; g++) {
        const q = ptrs + (<usize>g * 12);
        const k = <usize>load<u32>(q, 8) + ob, x0 = <usize>load<u32>(q) + ob, x1 = <usize>load<u32>(q, 4) + ob;
        for (let i: usize = 0; i < BLOCK * 4; i += 16) {
          const K = v128.load(k + i), X0 = v128.load(x0 + i), a = acc + (i << 1);
          v128.store(a, i64x2.add(v128.load(a), i64x2.extmul_low_i32x4_u(X0, K)));
          v128.store(a, i64x2.add(v128.load(a, 16), i64x2.extmul_high_i32x4_u(X0, K)), 16);
        }
        if (two) {
          for (let i: usize = 0; i < BLOCK * 4; i += 16) {
            const K = v128.load(k + i), X1 = v128.load(x1 + i), a = acc1 + (i << 1);
            v128.store(a, i64x2.add(v128.load(a), i64x2.extmul_low_i32x4_u(X1, K)));
            v128.store(a, i64x2.add(v128.load(a, 16), i64x2.extmul_high_i32x4_u(X1, K)), 16);
          }
        }
      }
      // fold to residues: into the outputs at the end, else back into the accumulators
      const last = g1 == count;
      for (let i: usize = 0; i < BLOCK * 4; i += 16) {
        const a = acc + (i << 1), r0 = fold64(v128.load(a), v128.load(a, 16), P, R, Rp, Op);
        if (last) v128.store(out0 + ob + i, r0);
        else { v128.store(a, i64x2.extend_low_i32x4_u(r0)); v128.store(a, i64x2.extend_high_i32x4_u(r0), 16); }
        if (two) {
          const a1 = acc1 + (i << 1), r1 = fold64(v128.load(a1), v128.load(a1, 16), P, R, Rp, Op);
          if (last) v128.store(out1 + ob + i, r1);
          else { v128.store(a1, i64x2.extend_low_i32x4_u(r1)); v128.store(a1, i64x2.extend_high_i32x4_u(r1), 16); }
        }
      }
    }
  }
}

/** out = a * b mod p, elementwise over n residues in [0, p). */
export function mulMod(out: usize, a: usize, b: usize, n: i32, p: u32, r32: u32, r32p: u32, onep: u32): void {
  const P = i32x4.splat(p), R = i32x4.splat(r32), Rp = i32x4.splat(r32p), Op = i32x4.splat(onep);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    const A = v128.load(a + o), B = v128.load(b + o);
    v128.store(out + o, fold64(i64x2.extmul_low_i32x4_u(A, B), i64x2.extmul_high_i32x4_u(A, B), P, R, Rp, Op));
  }
}

/** out = a - b mod p over n residues in [0, p). */
export function subMod(out: usize, a: usize, b: usize, n: i32, p: u32): void {
  const P = i32x4.splat(p);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, csub(i32x4.add(i32x4.sub(v128.load(a + o), v128.load(b + o)), P), P));
  }
}

/** out[k] = (add ? out[k] : 0) + e[k] mod p for small signed e (i32, |e| < p), n residues. */
export function smallMod(out: usize, e: usize, n: i32, p: u32, add: bool): void {
  const P = i32x4.splat(p), Z = i32x4.splat(0);
  for (let k = 0; k < n; k += 4) {
    const o = <usize>k << 2;
    const v = v128.load(e + o);
    const r = i32x4.add(v, v128.and(i32x4.lt_s(v, Z), P)); // [0, p)
    v128.store(out + o, add ? csub(i32x4.add(v128.load(out + o), r), P) : r);
  }
}

// ------------------------------------------------------------------------------------------------ encoding
// Per-prime constants at `cst`, 16 u32 words per prime (see kernels.ts primeConstants):
//   0 p, 1 c1, 2 c1', 3 c2, 4 c2', 5 r32, 6 r32', 7 one', 8 r64, 9 r96, 10 half, 11 qt, 12 qt'
// with c2 = 2^-64, c1 = 2^32 c2, r32 = 2^32, r64 = 2^64, r96 = 2^96, half = 2^(bits-1) (set by the caller for
// flooding), qt = (q / p)^-1, all mod p; x' the Shoup constant of x.
// For m in Z_2^64 and x = (q mod 2^64) m mod 2^64 read as a signed value, round(q m / 2^64) = (q m - x) / 2^64,
// which is -(x_hi 2^32 + x_lo) 2^-64 + [x < 0] mod p (as q = 0 mod p).

/**
 * Adds round(q m / 2^64) mod p_i to out (L primes, n residues each) at positions idx[j] (u32; positions 0..count-1
 * when idx = 0), for m[j] in Z_2^64 (u64).
 */
export function addDelta(out: usize, m: usize, idx: usize, count: i32, n: i32, L: i32, cst: usize, qlo: u64): void {
  for (let j = 0; j < count; j++) {
    const pos = idx ? load<u32>(idx + (<usize>j << 2)) : <u32>j;
    const x = qlo * load<u64>(m + (<usize>j << 3));
    const neg: u32 = <i64>x < 0 ? 1 : 0;
    const xh = <u32>(x >> 32), xl = <u32>x;
    for (let i = 0; i < L; i++) {
      const c = cst + (<usize>i << 6);
      const p = load<u32>(c);
      let r = shoup(load<u32>(c, 4), load<u32>(c, 8), xh, p) + shoup(load<u32>(c, 12), load<u32>(c, 16), xl, p);
      r = red1(red1(r, p << 1), p);
      const o = out + (<usize>(i * n) << 2) + (<usize>pos << 2);
      store<u32>(o, red1(load<u32>(o) + red1(p - r + neg, p), p));
    }
  }
}

/**
 * Adds uniform integers in [-2^(bits-1), 2^(bits-1)) to out (L primes) at positions idx[j], j < count, from 4 random
 * u32 words per position at rnd (bits <= 128; half = 2^(bits-1) mod p in the constants).
 */
export function addFlood(out: usize, idx: usize, rnd: usize, count: i32, n: i32, L: i32, cst: usize, bits: i32): void {
  for (let j = 0; j < count; j++) {
    const pos = load<u32>(idx + (<usize>j << 2));
    const r = rnd + (<usize>j << 4);
    const w0 = <u64>maskWord(load<u32>(r), bits), w1 = <u64>maskWord(load<u32>(r, 4), bits - 32);
    const w2 = <u64>maskWord(load<u32>(r, 8), bits - 64), w3 = <u64>maskWord(load<u32>(r, 12), bits - 96);
    for (let i = 0; i < L; i++) {
      const c = cst + (<usize>i << 6);
      const p = <u64>load<u32>(c);
      // each product < 2^62: the sum stays below 2^64
      const s = w0 + w1 * <u64>load<u32>(c, 20) + w2 * <u64>load<u32>(c, 32) + w3 * <u64>load<u32>(c, 36) + p - <u64>load<u32>(c, 40);
      const o = out + (<usize>(i * n) << 2) + (<usize>pos << 2);
      store<u32>(o, <u32>((<u64>load<u32>(o) + s % p) % p));
    }
  }
}

/** The low `bits` bits of w (all of it for bits >= 32, none for bits <= 0). */
@inline function maskWord(w: u32, bits: i32): u32 {
  return bits >= 32 ? w : bits <= 0 ? 0 : w & ((<u32>1 << <u32>bits) - 1);
}

/** out (L primes, n each) = v mod p_i for n values v < 2^96 given as three u32 limbs each at `wide`. */
export function reduceWide(out: usize, wide: usize, n: i32, L: i32, cst: usize): void {
  for (let i = 0; i < L; i++) {
    const c = cst + (<usize>i << 6);
    const p = <u64>load<u32>(c), r32 = <u64>load<u32>(c, 20), r64 = <u64>load<u32>(c, 32);
    const o = out + (<usize>(i * n) << 2);
    for (let k = 0; k < n; k++) {
      const w = wide + <usize>k * 12;
      store<u32>(o + (<usize>k << 2), <u32>((<u64>load<u32>(w) + <u64>load<u32>(w, 4) * r32 + <u64>load<u32>(w, 8) * r64) % p));
    }
  }
}

// ------------------------------------------------------------------------------------------------ modulus switching
// From q = p_0 ... p_(L-1) (residues) to 2^k (64 < k <= 96): c -> round(2^k c / q) mod 2^k. With y_i = c_i qt_i mod
// p_i, sum_i y_i q/p_i = c + v q for an integer v, so 2^k c / q = sum_i y_i 2^k / p_i (mod 2^k); with
// 2^k / p_i = I_i + F_i (integer and fraction) the result is sum_i y_i I_i + round(sum_i y_i F_i). The fraction is
// summed in float64: its error (six products and additions below 2^33: < 2^-18) moves the rounding by at most
// that much (|error| <= 1/2 + 2^-18).
// Table at `msw`, per prime 16 bytes: I_i low u32, I_i high u32, F_i f64.

/** out[3j..3j+2] = limbs of round(2^k c / q) mod 2^k for c at positions idx[j] (all 0..count-1 when idx = 0). */
export function modSwitch(out: usize, a: usize, idx: usize, count: i32, n: i32, L: i32, cst: usize, msw: usize, k: i32): void {
  const M: u64 = 0xffffffff;
  const top: u64 = k >= 96 ? M : ((<u64>1 << <u64>(k - 64)) - 1);
  for (let j = 0; j < count; j++) {
    const pos = idx ? load<u32>(idx + (<usize>j << 2)) : <u32>j;
    let a0: u64 = 0, a1: u64 = 0, f: f64 = 0;
    for (let i = 0; i < L; i++) {
      const c = cst + (<usize>i << 6), t = msw + (<usize>i << 4);
      const p = load<u32>(c);
      const y = red1(shoup(load<u32>(c, 44), load<u32>(c, 48), load<u32>(a + (<usize>(i * n) << 2) + (<usize>pos << 2)), p), p);
      a0 += <u64>y * <u64>load<u32>(t);
      a1 += <u64>y * <u64>load<u32>(t, 4) + (a0 >> 32);
      a0 &= M;
      f += <f64>y * load<f64>(t, 8);
    }
    a0 += <u64>Math.floor(f + 0.5);
    a1 += a0 >> 32;
    const o = out + <usize>j * 12;
    store<u32>(o, <u32>a0);
    store<u32>(o, <u32>a1, 4);
    store<u32>(o, <u32>((a1 >> 32) & top), 8);
  }
}

// ------------------------------------------------------------------------------------------------ decryption
// The client's last step. prod = c1' * s over the integers, as residues modulo P = p_0 ... p_(D-1) (|c1' s| < P / 2):
// X = sum_i y_i P/p_i - v P with y_i = prod_i pt_i mod p_i and v = round(sum_i y_i / p_i). Then
// x = 2^(K-k0) c0' + X mod 2^K and m = round(x / 2^(K-64)) mod 2^64.
// Table at `crt`: per prime 32 bytes (p, pt, pt', Q0, Q1, Q2 = limbs of (P / p_i) mod 2^96, 1/p_i as f64 at 24),
// then P mod 2^96 as three limbs at 128.

/** m[j] (u64) for positions idx[j]; c0[3j..3j+2] the limbs of the k0-bit c0' of position idx[j]. */
export function decrypt(m: usize, c0: usize, idx: usize, count: i32, prod: usize, n: i32, D: i32, crt: usize, K: i32, k0: i32): void {
  const M: i64 = 0xffffffff;
  const s = K - k0, sh = K - 64;
  const P0 = <i64>load<u32>(crt, 128), P1 = <i64>load<u32>(crt, 132), P2 = <i64>load<u32>(crt, 136);
  for (let j = 0; j < count; j++) {
    const pos = load<u32>(idx + (<usize>j << 2));
    let a0: i64 = 0, a1: i64 = 0, a2: i64 = 0, f: f64 = 0;
    for (let i = 0; i < D; i++) {
      const t = crt + (<usize>i << 5);
      const p = load<u32>(t);
      const y = <i64>red1(shoup(load<u32>(t, 4), load<u32>(t, 8), load<u32>(prod + (<usize>(i * n) << 2) + (<usize>pos << 2)), p), p);
      a0 += y * <i64>load<u32>(t, 12);
      a1 += y * <i64>load<u32>(t, 16) + (a0 >> 32);
      a2 += y * <i64>load<u32>(t, 20) + (a1 >> 32);
      a0 &= M;
      a1 &= M;
      f += <f64>y * load<f64>(t, 24);
    }
    const v = <i64>Math.floor(f + 0.5);
    // x = X + c0' 2^s (limbs, signed carries)
    const w = c0 + <usize>j * 12;
    const c00 = <i64>load<u32>(w), c01 = <i64>load<u32>(w, 4), c02 = <i64>load<u32>(w, 8);
    const b0 = (c00 << s) & M;
    const b1 = s ? ((c01 << s) | (c00 >> (32 - s))) & M : c01;
    const b2 = s ? ((c02 << s) | (c01 >> (32 - s))) & M : c02;
    a0 += b0 - v * P0 + (<i64>1 << (sh - 1)); // + 2^(K-65): rounding (K - 65 < 32)
    a1 += b1 - v * P1 + (a0 >> 32);
    a2 += b2 - v * P2 + (a1 >> 32);
    a0 &= M;
    a1 &= M;
    const lo = <u64>a0 | (<u64>a1 << 32);
    store<u64>(m + (<usize>j << 3), sh == 64 ? <u64>a2 : (lo >> <u64>sh) | (<u64>a2 << <u64>(64 - sh)));
  }
}
