// The parameter set of the RLWE scheme behind `--preprocess he` (docs/pi-he.md), its security check against the
// HomomorphicEncryption.org standard and the worst-case noise analysis that decides the flooding and the response
// moduli. Plaintexts are polynomials over Z_t with t = 2^64 (the protocol's ring: M c mod 2^64 needs all 64 bits).
//
// Noise, worst case, per decrypted coefficient (E_in = eta + 1/2: an honest upload's error plus its encoding rounding):
//   weight-dependent  E_w  = L1 * E_in, L1 = sum over the products of one response of ||k||_1 (public bound:
//                            structural non-zeros x the largest weight 2^(weightBits-1) - 1), plus 1/2 (the mask's
//                            encoding rounding, a function of M c - s as well)
//   re-randomisation  E_rr = (2n + 1) eta   (u e' + e1 + e2 s with u, s ternary)
//   noise region      every kept coefficient of c0 gets F uniform over W = ceil(q / t) consecutive integers
//                     (floodBits = the bits of W): with the mask round(q (-s) / t), s uniform in Z_t, the decrypted
//                     value modulo q is uniform (statistical distance < 3 / (2 W)) whatever the upload, so the
//                     client's view is independent of the weights (docs/pi-he.md, "Circuit privacy"). It is not
//                     bounded noise: decryption rounds to M c - s + carry, carry in {-1, 0, 1}.
//   modulus switching to 2^c0Bits (c0) and 2^c1Bits (c1), decryption modulo 2^K, K = c1Bits:
//     E = 2^K (E_w + E_rr) / q + 2^(K-c0Bits) (1/2 + 2^-17) + n (1/2 + 2^-17), and with |F| 2^K / q <= 2^(K-65) (1 + 2^-11)
//     the decryption round(x / 2^(K-64)) is within 1 of M c - s while E < 3 2^(K-65) - 2^K 2^(floodBits-1) / q.
/** An RLWE parameter set (fixed by its id on the wire). */
export interface HeParams {
  /** Wire id: every HE message starts with it. */
  readonly id: number;
  /** Ring degree n (X^n + 1). */
  readonly n: number;
  /** q = product of these primes, each < 2^30 and = 1 mod 2n (NTT-friendly). */
  readonly primes: readonly number[];
  /** The client computes c1 s over the integers modulo the product of the first `decPrimes` primes. */
  readonly decPrimes: number;
  /** Error: centred binomial, popcount(a) - popcount(b) for eta-bit a, b: |e| <= eta, sigma = sqrt(eta / 2). */
  readonly eta: number;
  /** Response moduli 2^c0Bits (the kept coefficients of c0) and 2^c1Bits (c1). */
  readonly c0Bits: number;
  readonly c1Bits: number;
  /** Statistical security of the noise region's flooding, for a whole session. */
  readonly statBits: number;
  /** A session decrypts at most 2^sessionCoeffBits coefficients (the flooding covers them all). */
  readonly sessionCoeffBits: number;
}

/**
 * N = 8192, q = five 30-bit primes (log2 q = 150.0 <= 218), ternary secret, error sigma = 3.24: 128-bit security by
 * the standard's table. The primes are the five largest p < 2^30 with p = 1 mod 16384. Five, not six: the noise
 * region (86 bits) still covers 2^26 coefficients per session at 2^-40 (checkParams), and every kernel NTT, product
 * and upload is a sixth cheaper.
 */
export const HE_PARAMS: HeParams = {
  id: 0x48450003, // 3: five primes; 2: per-stream AES keys for the seeded polynomials (sample.ts)
  n: 8192,
  primes: [1073692673, 1073643521, 1073479681, 1073430529, 1073299457],
  decPrimes: 4,
  eta: 21,
  c0Bits: 67,
  c1Bits: 78,
  statBits: 40,
  sessionCoeffBits: 26,
};

/**
 * HomomorphicEncryption.org security standard (Albrecht et al. 2018), Table 1: the largest log2 q for 128-bit classical
 * security with a uniform ternary secret and error sigma ~3.2, by ring degree.
 */
export const HE_STANDARD_128: Readonly<Record<number, number>> = {
  1024: 27,
  2048: 54,
  4096: 109,
  8192: 218,
  16384: 438,
  32768: 881,
};

export function log2q(p: HeParams): number {
  return p.primes.reduce((s, x) => s + Math.log2(x), 0);
}

function isPrime(x: number): boolean {
  if (x < 2 || x % 2 === 0) return x === 2;
  for (let d = 3; d * d <= x; d += 2) if (x % d === 0) return false;
  return true;
}

/** Throws unless `p` is a valid parameter set at 128-bit security (the table above) with a sound noise budget. */
export function checkParams(p: HeParams): void {
  const bad = (why: string): never => {
    throw new Error(`HE parameters ${p.id.toString(16)}: ${why}`);
  };
  const maxQ = HE_STANDARD_128[p.n];
  if (maxQ === undefined)
    bad(`ring degree ${p.n} is not in the 128-bit table (${Object.keys(HE_STANDARD_128).join(', ')})`);
  const lq = log2q(p);
  if (lq > maxQ!) bad(`log2 q = ${lq.toFixed(2)} exceeds ${maxQ} bits, the 128-bit bound for n = ${p.n}`);
  if (Math.sqrt(p.eta / 2) < 3.19) bad(`error sigma ${Math.sqrt(p.eta / 2).toFixed(2)} is below the standard's 3.19`);
  if (new Set(p.primes).size !== p.primes.length) bad('primes repeat');
  for (const x of p.primes) {
    if (!Number.isInteger(x) || x >= 2 ** 30 || !isPrime(x) || x % (2 * p.n) !== 1)
      bad(`${x} is not a prime < 2^30 equal to 1 mod ${2 * p.n}`);
  }
  const dec = p.primes.slice(0, p.decPrimes).reduce((s, x) => s + Math.log2(x), 0);
  if (!(p.decPrimes >= 1 && p.decPrimes <= 4) || dec <= 1 + Math.log2(p.n) + p.c1Bits) {
    bad(
      `${p.decPrimes} decryption primes (${dec.toFixed(1)} bits) cannot hold c1 s (${(1 + Math.log2(p.n) + p.c1Bits).toFixed(1)} bits)`,
    );
  }
  if (!(p.c0Bits > 64 && p.c0Bits <= p.c1Bits && p.c1Bits <= 96 && p.c1Bits - p.c0Bits < 32))
    bad(`response moduli 2^${p.c0Bits}, 2^${p.c1Bits} outside 64 < c0 <= c1 <= 96, c1 - c0 < 32`);
  if (!(p.statBits >= 40)) bad(`statistical security ${p.statBits} bits < 40`);
  // the noise region's flooding: statistical distance < 3 / (2 W) <= 2^(2 - floodBits) per coefficient
  const region = Math.ceil(lq - 64);
  if (!(region - 2 >= p.statBits + p.sessionCoeffBits))
    bad(
      `a noise region of ${region} bits covers 2^${p.sessionCoeffBits} coefficients at ${region - 2 - p.sessionCoeffBits} bits, under ${p.statBits}`,
    );
  // The largest kernel norm any layer may have (weights < 2^15, up to 2^20 taps per output) must fit.
  const n = noiseBudget(p, 2 ** 35);
  if (!(n.marginBits > 0))
    bad(`noise budget fails for a kernel L1 norm of 2^35 (margin ${n.marginBits.toFixed(2)} bits)`);
}

export interface NoiseBudget {
  /** Weight-dependent noise bound E_w (at q) of an honest upload. */
  weightNoise: number;
  /** The noise region: each kept coefficient of c0 gets a value uniform over W = ceil(q / t) < 2^floodBits integers. */
  floodBits: number;
  /** Bound at q of the noise that is not uniform (E_w and the re-randomisation; the region's flooding excluded). */
  totalAtQ: number;
  /** That noise after modulus switching, at 2^K, and its limit for a decryption within 1 of M c - s. */
  decryptNoise: number;
  decryptLimit: number;
  /** log2(limit / noise): > 0 means the decryption is within 1 of M c - s in the worst case. */
  marginBits: number;
}

/** The worst-case budget of one response whose products have kernel L1 norm `kernelL1` in all (public bound). */
export function noiseBudget(p: HeParams, kernelL1: number): NoiseBudget {
  const ein = p.eta + 0.5,
    lq = log2q(p);
  const weightNoise = kernelL1 * ein + 0.5;
  const floodBits = Math.ceil(lq - 64);
  const rerand = (2 * p.n + 1) * p.eta;
  const totalAtQ = weightNoise + rerand;
  const K = p.c1Bits,
    round = 0.5 + 2 ** -17; // the switch rounds a float64 sum of L <= 6 terms < 2^30 each: error < 2^-18
  const decryptNoise = 2 ** (K - lq) * totalAtQ + 2 ** (K - p.c0Bits) * round + p.n * round;
  // x = 2^(K-64) (M c - s) + F 2^K / q + E with |F| <= 2^(floodBits-1): round(x / 2^(K-64)) - (M c - s) is in
  // {-1, 0, 1} while |F| 2^K / q + E < 3 2^(K-65)
  const decryptLimit = 3 * 2 ** (K - 65) - 2 ** (K + floodBits - 1 - lq);
  return {
    weightNoise,
    floodBits,
    totalAtQ,
    decryptNoise,
    decryptLimit,
    marginBits: Math.log2(decryptLimit / decryptNoise),
  };
}
