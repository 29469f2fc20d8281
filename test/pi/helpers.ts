// Shared test inputs: plaintext references in BigInt and edge-case share sets for the ReLU circuits.
import { randomBytes } from 'node:crypto';

export type Kind = 'relu' | 'trunc';

/** z = (op(a + b) >> f) - r mod 2^k with op = ReLU or identity on the signed value. */
export function rescaleRef(kind: Kind, k: number, f: number, a: bigint, b: bigint, r: bigint): bigint {
  const K = 1n << BigInt(k);
  const x = (((a + b) % K) + K) % K;
  const xs = x >= K / 2n ? x - K : x;
  const y = kind === 'relu' ? (xs > 0n ? xs : 0n) : xs;
  const yt = y >> BigInt(f); // BigInt >> floors, i.e. an arithmetic shift
  return (((yt - r) % K) + K) % K;
}

export function randBig(k: number): bigint {
  let v = 0n;
  for (const b of randomBytes(8)) v = (v << 8n) | BigInt(b);
  return v & ((1n << BigInt(k)) - 1n);
}

/** Values around 0 and around a truncation step F = 2^f: 0, ±1, ±2, ±F, ±(F - 1), ±(F + 1). */
export const shiftEdges = (F: bigint): bigint[] => [0n, 1n, -1n, 2n, -2n, F, -F, F - 1n, -(F - 1n), F + 1n, -F - 1n];

/**
 * Shares (a, b) and masks r covering edge values of x = a + b (0, ±1, ±2, ±2^f, ±(2^f - 1), the extremes
 * ±2^(k-1), 2^(k-1) - 1), shares that wrap around 2^k, and random ones.
 */
export function edgeCases(k: number, f: number, nRandom: number): { a: bigint[]; b: bigint[]; r: bigint[] } {
  const K = 1n << BigInt(k),
    H = K / 2n,
    F = 1n << BigInt(f);
  const xs = [...shiftEdges(F), H - 1n, -H, H - 2n, -H + 1n, 3n * F, -3n * F];
  const a: bigint[] = [],
    b: bigint[] = [],
    r: bigint[] = [];
  const mod = (v: bigint) => ((v % K) + K) % K;
  const masks = [0n, 1n, K - 1n, H, randBig(k)];
  for (const x of xs) {
    for (const av of [0n, mod(x), K - 1n, H, randBig(k)]) {
      a.push(av);
      b.push(mod(x - av));
      r.push(masks[a.length % masks.length]);
    }
  }
  for (let i = 0; i < nRandom; i++) {
    a.push(randBig(k));
    b.push(randBig(k));
    r.push(randBig(k));
  }
  return { a, b, r };
}

export const toF64 = (v: bigint[]) => Float64Array.from(v, (x) => Number(x));
