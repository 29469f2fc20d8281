// New connections per address, as a token bucket checked on the raw TCP accept, before any TLS handshake: a flood of
// handshakes from one address then costs the server a closed socket each, not an ECDHE and a signature.

/** Default rate of new connections per address: 8 per second, bursts of 16. An honest client opens one per session. */
export const DEFAULT_CONNECT_RATE = 8;

/** At most this many addresses are tracked; past it the full (idle) buckets are dropped first, then the oldest. */
const MAX_TRACKED = 65_536;

export class ConnectRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  readonly burst: number;
  /** `perSecond` 0 turns the limit off. */
  constructor(
    readonly perSecond: number,
    burst?: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(perSecond >= 0) || !Number.isFinite(perSecond))
      throw new Error(`connect rate must be >= 0, got ${perSecond}`);
    this.burst = burst ?? Math.max(1, Math.ceil(2 * perSecond));
  }

  /** Takes one token for `address`; false when its bucket is empty (the connection is to be closed). */
  take(address: string | undefined): boolean {
    if (this.perSecond === 0) return true;
    const a = address ?? '?',
      t = this.now();
    let b = this.buckets.get(a);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.perSecond);
      b.at = t;
      this.buckets.delete(a); // re-inserted below: the map stays in order of last use
    } else {
      if (this.buckets.size >= MAX_TRACKED) this.evict(t);
      b = { tokens: this.burst, at: t };
    }
    this.buckets.set(a, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get tracked(): number {
    return this.buckets.size;
  }

  private evict(t: number): void {
    for (const [a, b] of this.buckets)
      if (b.tokens + ((t - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(a);
    // Still full: the least recently used go (they get a fresh bucket if they come back).
    for (const a of this.buckets.keys()) {
      if (this.buckets.size < MAX_TRACKED * 0.9) break;
      this.buckets.delete(a);
    }
  }
}
