// A kept ReLU site as both parties see it: below the protocols (relu/index.ts re-exports it) because the session's
// randomness (random.ts) draws each site's client mask.

/** One kept ReLU op of the plan (or the kept part of a partially masked site), public to both parties. */
export interface ReluSite {
  /** Plan op index (unique per session; protocols key their per-site state by it). */
  op: number;
  name: string;
  /** Elements evaluated. */
  size: number;
  /** The protocol reads x mod 2^width as a signed value (|x| < 2^(width-1) by the plan's headroom). */
  width: number;
  /** Output rescaling: y = ReLU(x) >> shift (arithmetic). */
  shift: number;
}
