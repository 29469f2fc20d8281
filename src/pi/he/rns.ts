// Constants derived from a parameter set (computed once with BigInt): NTT twiddle tables, the per-prime constants of
// encoding / flooding / modulus switching, and the CRT table of the client's decryption. Layouts match asm/kernels.ts.
import type { HeParams } from './params.js';

const B32 = 1n << 32n;

function powmod(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

const inv = (a: bigint, m: bigint) => powmod(((a % m) + m) % m, m - 2n, m); // m prime

// The tables' n-length loops in exact double arithmetic (BigInt there took ~75 ms per process, paid by every client).
// For p < 2^30 a double quotient is off by at most one, and the remainder lies in (-p, 2p), inside a signed 32-bit
// word, so its low 32 bits (Math.imul) give it exactly.
/** a * b mod p for 0 <= a, b < p < 2^30. */
export function mulModSmall(a: number, b: number, p: number): number {
  const q = Math.floor((a * b) / p);
  const r = (Math.imul(a, b) - Math.imul(q, p)) | 0;
  return r < 0 ? r + p : r >= p ? r - p : r;
}
/** floor(w * 2^32 / p) for 0 <= w < p < 2^30 (Shoup's constant). */
export function shoupSmall(w: number, p: number): number {
  let q = Math.floor((w * 4294967296) / p);
  const r = -Math.imul(q, p) | 0; // w * 2^32 - q p, whose low 32 bits are -q p
  if (r < 0) q--;
  else if (r >= p) q++;
  return q;
}
/** shoupSmall of a residue held as a BigInt (the scalar constants). */
const shoupOf = (w: bigint, p: bigint) => shoupSmall(Number(w), Number(p));

function bitrev(i: number, bits: number): number {
  let r = 0;
  for (let b = 0; b < bits; b++) r |= ((i >>> b) & 1) << (bits - 1 - b);
  return r;
}

/** The smallest x^((p-1)/2n), x = 2, 3, ..., of order exactly 2n (a primitive 2n-th root of unity mod p). */
export function primitiveRoot2n(p: number, n: number): bigint {
  const P = BigInt(p);
  for (let x = 2n; x < P; x++) {
    const r = powmod(x, (P - 1n) / BigInt(2 * n), P);
    if (powmod(r, BigInt(n), P) === P - 1n) return r;
  }
  throw new Error(`no primitive ${2 * n}-th root of unity mod ${p}`);
}

/** Words per prime of the NTT tables: forward (3n) then inverse (3n). */
export const nttTableWords = (n: number) => 6 * n;
/** Words per prime of the constants table. */
export const CONST_WORDS = 16;

export interface RnsConstants {
  params: HeParams;
  q: bigint;
  /** q mod 2^64 (the encoding's multiplier). */
  qlo: bigint;
  /** NTT tables of all primes (nttTableWords(n) words each). */
  ntt: Uint32Array;
  /** Per prime: n^-1 and its Shoup constant (the inverse NTT's last factor). */
  ninv: Uint32Array;
  ninvp: Uint32Array;
  /** Per prime: r32 = 2^32 mod p, r32' and 1' (Shoup), for dot / mulMod. */
  r32: Uint32Array;
  r32p: Uint32Array;
  onep: Uint32Array;
  /** The constants table (CONST_WORDS per prime; `half` left 0, set per flooding call). */
  consts: Uint32Array;
  /** Modulus-switching tables to 2^c0Bits and 2^c1Bits (16 bytes per prime). */
  msw0: Uint8Array;
  msw1: Uint8Array;
  /** Decryption CRT table (160 bytes). */
  crt: Uint8Array;
}

const cache = new Map<HeParams, RnsConstants>();

export function rnsConstants(params: HeParams): RnsConstants {
  let c = cache.get(params);
  if (!c) cache.set(params, (c = build(params)));
  return c;
}

function mswTable(primes: readonly number[], k: number): Uint8Array {
  const out = new Uint8Array(16 * primes.length),
    dv = new DataView(out.buffer);
  primes.forEach((x, i) => {
    const p = BigInt(x),
      I = (1n << BigInt(k)) / p,
      F = Number((1n << BigInt(k)) % p) / x;
    if (I >= 1n << 64n) throw new Error(`modulus switch to 2^${k}: 2^k / p does not fit 64 bits`);
    dv.setUint32(16 * i, Number(I & 0xffffffffn), true);
    dv.setUint32(16 * i + 4, Number(I >> 32n), true);
    dv.setFloat64(16 * i + 8, F, true);
  });
  return out;
}

function build(params: HeParams): RnsConstants {
  const { n, primes } = params,
    L = primes.length,
    logn = Math.log2(n);
  const q = primes.reduce((a, x) => a * BigInt(x), 1n);
  const tw = nttTableWords(n);
  const ntt = new Uint32Array(L * tw);
  const ninv = new Uint32Array(L),
    ninvp = new Uint32Array(L),
    r32 = new Uint32Array(L),
    r32p = new Uint32Array(L),
    onep = new Uint32Array(L);
  const consts = new Uint32Array(L * CONST_WORDS);
  const T64 = 1n << 64n;
  primes.forEach((x, i) => {
    const p = BigInt(x),
      psi = primitiveRoot2n(x, n),
      psiInv = inv(psi, p);
    const pw = new Float64Array(n),
      pwi = new Float64Array(n),
      s = Number(psi),
      si = Number(psiInv);
    pw[0] = pwi[0] = 1;
    for (let k = 1; k < n; k++) {
      pw[k] = mulModSmall(pw[k - 1]!, s, x);
      pwi[k] = mulModSmall(pwi[k - 1]!, si, x);
    }
    for (const [dir, pows] of [
      [0, pw],
      [1, pwi],
    ] as const) {
      const base = i * tw + dir * 3 * n;
      for (let k = 0; k < n; k++) {
        const w = pows[bitrev(k, logn)]!;
        ntt[base + k] = w;
        ntt[base + n + k] = shoupSmall(w, x);
      }
      for (let j = 0; j < n / 4; j++) {
        const w = ntt[base + n / 4 + j]!,
          wp = ntt[base + n + n / 4 + j]!;
        ntt[base + 2 * n + 2 * j] = ntt[base + 2 * n + 2 * j + 1] = w;
        ntt[base + 2 * n + n / 2 + 2 * j] = ntt[base + 2 * n + n / 2 + 2 * j + 1] = wp;
      }
    }
    const ni = inv(BigInt(n), p);
    ninv[i] = Number(ni);
    ninvp[i] = shoupOf(ni, p);
    const c2 = inv(T64 % p, p),
      c1 = (B32 * c2) % p,
      R32 = B32 % p,
      qt = inv(q / p, p);
    r32[i] = Number(R32);
    r32p[i] = shoupOf(R32, p);
    onep[i] = shoupOf(1n, p);
    consts.set(
      [
        x,
        Number(c1),
        shoupOf(c1, p),
        Number(c2),
        shoupOf(c2, p),
        Number(R32),
        shoupOf(R32, p),
        shoupOf(1n, p),
        Number(T64 % p),
        Number((T64 * B32) % p),
        0,
        Number(qt),
        shoupOf(qt, p),
        0,
        0,
        0,
      ],
      i * CONST_WORDS,
    );
  });
  // Decryption: CRT over the first decPrimes primes, values modulo 2^96.
  const D = params.decPrimes,
    P = primes.slice(0, D).reduce((a, x) => a * BigInt(x), 1n),
    M96 = (1n << 96n) - 1n;
  const crt = new Uint8Array(160),
    dv = new DataView(crt.buffer);
  primes.slice(0, D).forEach((x, i) => {
    const p = BigInt(x),
      Qi = P / p,
      pt = inv(Qi, p),
      Qm = Qi & M96;
    [
      x,
      Number(pt),
      shoupOf(pt, p),
      Number(Qm & 0xffffffffn),
      Number((Qm >> 32n) & 0xffffffffn),
      Number(Qm >> 64n),
    ].forEach((v, k) => dv.setUint32(32 * i + 4 * k, v, true));
    dv.setFloat64(32 * i + 24, 1 / x, true);
  });
  const Pm = P & M96;
  [Pm & 0xffffffffn, (Pm >> 32n) & 0xffffffffn, Pm >> 64n].forEach((v, k) =>
    dv.setUint32(128 + 4 * k, Number(v), true),
  );
  return {
    params,
    q,
    qlo: q & (T64 - 1n),
    ntt,
    ninv,
    ninvp,
    r32,
    r32p,
    onep,
    consts,
    msw0: mswTable(primes, params.c0Bits),
    msw1: mswTable(primes, params.c1Bits),
    crt,
  };
}
