// The interface of native P-256 scalar multiplication (backend.ts's p256Backend), with no imports: the platform
// modules import it while backend.ts imports them.

/** A P-256 key pair: d a 32-byte big-endian scalar in [1, n-1], pub = d·G as a 65-byte uncompressed point. */
export interface EcKey {
  readonly d: Uint8Array;
  readonly pub: Uint8Array;
}

/** Native P-256 scalar multiplication; the caller validates every point it passes (on the curve, not the identity). */
export interface P256Backend {
  readonly name: string;
  /** The key pair of each scalar (fixed-base multiplication). */
  keys(scalars: readonly Uint8Array[]): Promise<EcKey[]>;
  /**
   * The x-coordinate (32 bytes, big-endian) of d_i·P_i for each i, where d_i is keys[i] or keys[0] if there is one
   * key, and P_i (uncompressed) likewise points[i] or points[0]: plain ECDH.
   */
  sharedX(keys: readonly EcKey[], points: readonly Uint8Array[]): Promise<Uint8Array[]>;
}

/** The number of pairs of a sharedX() call (a list of one is broadcast); throws on lengths that do not fit. */
export function pairCount(keys: number, points: number): number {
  const n = Math.max(keys, points);
  if (!keys || !points || (keys !== 1 && keys !== n) || (points !== 1 && points !== n))
    throw new Error(`P-256 sharedX: ${keys} keys and ${points} points do not pair up`);
  return n;
}
