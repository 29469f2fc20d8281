// The RLWE scheme (BFV-like, plaintext modulus t = 2^64) on a HeEngine. The client owns the secret key s (ternary);
// ciphertexts (c0, c1) satisfy c0 + c1 s = round(q m / t) + noise (mod q), with m encoded as round(q m / t) (not
// floor(q / t) m), so a product with a plaintext k carries no (q mod t) term, only k (e + 1/2).
//   upload (client, symmetric): c1 = a uniform from a seed (not sent), c0 = -a s + e + round(q m / t), in the NTT
//     domain (the server multiplies without a forward NTT).
//   public key (client, once per session): (p0, a') = (-a' s + e', a'), a' from a seed.
//   response (server): sum_g ct_g k_g, minus the mask, plus a public-key encryption of 0 (fresh ternary u:
//     (u p0 + e1, u a' + e2)), plus, on the kept coefficients of c0, a value uniform over the whole noise region
//     (W = ceil(q / t) consecutive integers): with the uniform mask the decrypted value modulo q is then uniform
//     whatever the client uploaded (docs/pi-he.md, "Circuit privacy"); switched to 2^c0Bits (kept coefficients of
//     c0 only) and 2^c1Bits (all of c1).
//   decryption (client): x = 2^(K-c0Bits) c0' + c1' s mod 2^K (K = c1Bits; c1' s over the integers by CRT on
//     decPrimes primes), m = round(x / 2^(K-64)) mod 2^64: M c - s + carry, carry in {-1, 0, 1} (the noise region is
//     uniform, so the rounding carries at random).
import type { HeEngine, Poly } from './kernels.js';
import { randomFill, randomSeed, sampleCbd, sampleTernary, Xof } from './sample.js';
import type { Random } from '../random.js';
import type { HeParams } from './params.js';

/**
 * The noise region of a coefficient modulo q: W = ceil(q / t) (t = 2^64) as four u32 words (little-endian) and its
 * bit length (floodBits of the noise budget).
 */
export interface NoiseRegion {
  bits: number;
  w: Uint32Array;
}

const regions = new Map<string, NoiseRegion>();

export function noiseRegion(p: HeParams): NoiseRegion {
  const key = p.primes.join(',');
  let r = regions.get(key);
  if (!r) {
    const q = p.primes.reduce((a, x) => a * BigInt(x), 1n),
      W = (q + (1n << 64n) - 1n) >> 64n;
    if (W >> 128n) throw new Error('noise region: q / 2^64 exceeds 128 bits');
    r = {
      bits: W.toString(2).length,
      w: Uint32Array.from({ length: 4 }, (_, i) => Number((W >> BigInt(32 * i)) & 0xffffffffn)),
    };
    regions.set(key, r);
  }
  return r;
}

/**
 * count x 4 random words, each quadruple (little-endian) a value uniform in [0, W) for the region `r`: bits above
 * r.bits masked off, values >= W drawn again (W > 2^(bits-1): fewer than half are; for the parameter set, 1 in 640).
 */
export function regionWords(r: NoiseRegion, count: number, rand: Random): Uint32Array {
  const out = randomFill(new Uint32Array(4 * count), rand);
  const masked = (j: number): void => {
    for (let i = 0; i < 4; i++) {
      const lim = r.bits - 32 * i;
      if (lim <= 0) out[4 * j + i] = 0;
      else if (lim < 32) out[4 * j + i] = (out[4 * j + i]! & (2 ** lim - 1)) >>> 0;
    }
  };
  const below = (j: number): boolean => {
    for (let i = 3; i >= 0; i--) {
      const a = out[4 * j + i]!,
        b = r.w[i]!;
      if (a !== b) return a < b;
    }
    return false;
  };
  for (let j = 0; j < count; j++) {
    masked(j);
    while (!below(j)) {
      out.set(randomFill(new Uint32Array(4), rand), 4 * j);
      masked(j);
    }
  }
  return out;
}

/** The client's key: s as small integers and in the NTT domain (all primes), in the engine's memory for the session. */
export interface SecretKey {
  s: Int32Array;
  sNtt: Poly;
}

/** A public key as sent: the seed of a' and p0 = -a' s + e' (NTT domain, all primes, prime-major). */
export interface PublicKeyData {
  seed: Uint8Array;
  p0: Uint32Array;
}

/** Generates s (kept in the engine for the session) and the public key, with the client's coins `rand`. */
export async function keyGen(e: HeEngine, rand: Random): Promise<{ sk: SecretKey; pk: PublicKeyData }> {
  const s = sampleTernary(e.n, rand),
    sNtt = e.poly();
  e.small(sNtt, e.putSmall(s), false);
  e.forward(sNtt);
  const seed = randomSeed(rand);
  const a = await (await Xof.create(seed)).uniform(0, e.params.primes, e.n);
  const m = e.mark();
  const ap = e.poly(),
    p0 = e.poly();
  e.words(ap).set(a);
  e.small(p0, e.putSmall(sampleCbd(e.n, e.params.eta, rand)), false);
  e.forward(p0);
  e.mul(ap, ap, sNtt);
  e.sub(p0, p0, ap);
  const pk = { seed, p0: e.words(p0).slice() };
  e.release(m);
  return { sk: { s, sNtt }, pk };
}

/** A plaintext for an upload: values m (Z_2^64 as lo/hi words) at coefficient positions idx, zero elsewhere. */
export interface SparsePlain {
  idx: Uint32Array;
  lo: Uint32Array;
  hi: Uint32Array;
}

/** Writes u64 values (from lo/hi words) into scratch memory; returns the offset. */
function putU64(e: HeEngine, lo: Uint32Array, hi: Uint32Array): number {
  const p = e.alloc(8 * lo.length),
    w = e.u32(p, 2 * lo.length);
  for (let j = 0; j < lo.length; j++) {
    w[2 * j] = lo[j]!;
    w[2 * j + 1] = hi[j]!;
  }
  return p;
}

function putU32(e: HeEngine, v: Uint32Array): number {
  const p = e.alloc(4 * v.length);
  e.u32(p, v.length).set(v);
  return p;
}

/**
 * Symmetric encryptions of the plaintexts under `sk`: c0 of each (NTT domain, prime-major); c1 of plaintext j is
 * the uniform polynomial of stream j of `seed`. The errors come from the client's coins `rand`.
 */
export async function encryptUploads(
  e: HeEngine,
  sk: SecretKey,
  seed: Uint8Array,
  plains: readonly SparsePlain[],
  rand: Random,
): Promise<Uint32Array[]> {
  const xof = await Xof.create(seed);
  const as = await Promise.all(plains.map((_, j) => xof.uniform(j, e.params.primes, e.n)));
  return plains.map((pt, j) => {
    const m = e.mark();
    const c0 = e.poly(e.L, false),
      a = e.poly(e.L, false);
    e.small(c0, e.putSmall(sampleCbd(e.n, e.params.eta, rand)), false);
    e.addDelta(c0, putU64(e, pt.lo, pt.hi), putU32(e, pt.idx), pt.idx.length);
    e.forward(c0);
    e.words(a).set(as[j]!);
    e.mul(a, a, sk.sNtt);
    e.sub(c0, c0, a);
    const out = e.words(c0).slice();
    e.release(m);
    return out;
  });
}

/** The server's copy of the client's public key, in the engine's memory for the session. */
export interface ServerPublicKey {
  p0: Poly;
  a: Poly;
}

export async function loadPublicKey(e: HeEngine, pk: PublicKeyData): Promise<ServerPublicKey> {
  const a = await (await Xof.create(pk.seed)).uniform(0, e.params.primes, e.n);
  const p0 = e.poly(),
    ap = e.poly();
  e.words(p0).set(pk.p0);
  e.words(ap).set(a);
  return { p0, a: ap };
}

/** One input ciphertext on the server (NTT domain). */
export interface InputCt {
  c0: Poly;
  a: Poly;
}

/** A response ciphertext after modulus switching: c1 (n values of c1Bits) and the kept c0 values (c0Bits), 3 limbs each. */
export interface ResponseCt {
  c1: Uint32Array;
  c0: Uint32Array;
}

/** A ciphertext modulo q in the engine's memory, coefficient domain (a response before switching). */
export interface FullCt {
  c0: Poly;
  c1: Poly;
}

/**
 * The server's response for one output ciphertext, modulo q: sum_t inputs[t] * kernels[t] (kernels in the NTT
 * domain), plus a public-key encryption of 0 (fresh u, e1, e2), plus round(q m / t) for the mask m (u64 values as
 * lo/hi words, = -s) and flooding at the kept positions `keep`: for floodBits >= the noise region's bits (the noise
 * budget's floodBits, what the server uses), uniform over the whole region, W = ceil(q / t) consecutive integers
 * [-2^(bits-1), W - 2^(bits-1)); for smaller floodBits (tests only) uniform in [-2^(floodBits-1), 2^(floodBits-1));
 * none for 0. Allocated in the engine's scratch memory (the caller releases it). The re-randomisation and the
 * flooding come from the server's coins `rand`.
 */
export function evaluate(
  e: HeEngine,
  pk: ServerPublicKey,
  terms: readonly [InputCt, Poly][],
  keep: Uint32Array,
  maskLo: Uint32Array,
  maskHi: Uint32Array,
  floodBits: number,
  rand: Random,
): FullCt {
  const n = e.n;
  const c0 = e.poly(e.L, false),
    c1 = e.poly(e.L, false); // written whole by dot
  const m = e.mark();
  const u = e.poly(e.L, false);
  e.small(u, e.putSmall(sampleTernary(n, rand)), false);
  e.forward(u);
  e.dot(c0, c1, [...terms.map(([ct, k]) => [ct.c0, ct.a, k] as [Poly, Poly, Poly]), [pk.p0, pk.a, u]]);
  e.inverse(c0);
  e.inverse(c1);
  e.small(c1, e.putSmall(sampleCbd(n, e.params.eta, rand)), true);
  e.small(c0, e.putSmall(sampleCbd(n, e.params.eta, rand)), true);
  const idx = putU32(e, keep);
  e.addDelta(c0, putU64(e, maskLo, maskHi), idx, keep.length);
  const region = noiseRegion(e.params);
  if (floodBits >= region.bits) {
    const rnd = e.alloc(16 * keep.length);
    e.u32(rnd, 4 * keep.length).set(regionWords(region, keep.length, rand));
    e.addFlood(c0, idx, rnd, keep.length, region.bits);
  } else if (floodBits > 0) {
    const rnd = e.alloc(16 * keep.length);
    randomFill(e.u32(rnd, 4 * keep.length), rand);
    e.addFlood(c0, idx, rnd, keep.length, floodBits);
  }
  e.release(m);
  return { c0, c1 };
}

/** Switches a response to 2^c1Bits (all of c1) and 2^c0Bits (c0 at the kept positions only). */
export function switchDown(e: HeEngine, ct: FullCt, keep: Uint32Array): ResponseCt {
  const m = e.mark(),
    n = e.n;
  const idx = putU32(e, keep),
    o1 = e.alloc(12 * n),
    o0 = e.alloc(12 * keep.length);
  e.modSwitch(o1, ct.c1, 0, n, 1);
  e.modSwitch(o0, ct.c0, idx, keep.length, 0);
  const out = { c1: e.u32(o1, 3 * n).slice(), c0: e.u32(o0, 3 * keep.length).slice() };
  e.release(m);
  return out;
}

/** evaluate + switchDown: the response the client receives. */
export function respond(...args: Parameters<typeof evaluate>): ResponseCt {
  const [e, , , keep] = args;
  const m = e.mark();
  const out = switchDown(e, evaluate(...args), keep);
  e.release(m);
  return out;
}

/** Decrypts a response at its kept positions: the values (lo/hi words) in the order of `keep`. */
export function decryptResponse(
  e: HeEngine,
  sk: SecretKey,
  ct: ResponseCt,
  keep: Uint32Array,
): { lo: Uint32Array; hi: Uint32Array } {
  const m = e.mark(),
    D = e.params.decPrimes;
  const w = putU32(e, ct.c1);
  const prod = e.poly(D, false);
  e.reduceWide(prod, w);
  e.forward(prod);
  e.mul(prod, prod, { ptr: sk.sNtt.ptr, primes: D });
  e.inverse(prod);
  const c0 = putU32(e, ct.c0),
    idx = putU32(e, keep),
    out = e.alloc(8 * keep.length);
  e.decrypt(out, c0, idx, keep.length, prod);
  const v = e.u32(out, 2 * keep.length),
    lo = new Uint32Array(keep.length),
    hi = new Uint32Array(keep.length);
  for (let j = 0; j < keep.length; j++) {
    lo[j] = v[2 * j]!;
    hi[j] = v[2 * j + 1]!;
  }
  e.release(m);
  return { lo, hi };
}
