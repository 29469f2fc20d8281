// A party's transcript (what it receives) and checks on it, for privacy tests: leaked words of secrets, byte
// uniformity, and independence of two transcripts' distributions. Kept apart from the tests so that it can be shared.
import type { Channel } from '../../src/pi/transport/channel.js';
import type { R64 } from '../../src/pi/fixed.js';

/** What `ch` hands out from now on, in order (tagged by the caller's current label, e.g. the phase). */
export class Transcript {
  readonly frames: { label: string; bytes: Uint8Array }[] = [];
  label = '';
  constructor(ch: Channel) {
    const recv = ch.recv.bind(ch);
    ch.recv = async () => {
      const m = await recv();
      this.frames.push({ label: this.label, bytes: m });
      return m;
    };
  }
  /** The frames received under a label (all when omitted). */
  bytes(label?: string): Uint8Array[] {
    return this.frames.filter((f) => label === undefined || f.label === label).map((f) => f.bytes);
  }
}

const key = (lo: number, hi: number) => `${hi >>> 0}:${lo >>> 0}`;

/** Secret 64-bit words (ring elements) to look for; values with little entropy (|v| < 2^16) are left out. */
export function secretWords(...vs: R64[]): Set<string> {
  const s = new Set<string>();
  for (const v of vs) {
    for (let i = 0; i < v.lo.length; i++) {
      const hi = v.hi[i]! | 0, lo = v.lo[i]!;
      if ((hi === 0 && lo < 65536) || (hi === -1 && lo > 0xffff0000)) continue;
      s.add(key(lo, hi));
    }
  }
  return s;
}

/** Occurrences of any secret word at ANY byte offset of the frames (little-endian, as r64ToBytes writes). */
export function leakedWords(frames: Uint8Array[], secrets: Set<string>): { frame: number; offset: number }[] {
  const hits: { frame: number; offset: number }[] = [];
  frames.forEach((f, k) => {
    const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
    for (let o = 0; o + 8 <= f.byteLength; o++) if (secrets.has(key(dv.getUint32(o, true), dv.getUint32(o + 4, true)))) hits.push({ frame: k, offset: o });
  });
  return hits;
}

export function byteHistogram(frames: Uint8Array[]): number[] {
  const h = new Array<number>(256).fill(0);
  for (const f of frames) for (const b of f) h[b]!++;
  return h;
}

/** Chi-square of a byte histogram against uniform (255 degrees of freedom: mean 255, sd ~22.6). */
export function chi2Uniform(h: number[]): number {
  const n = h.reduce((a, b) => a + b, 0), e = n / 256;
  return h.reduce((a, o) => a + (o - e) ** 2 / e, 0);
}

/** Two-sample chi-square of two byte histograms (same distribution: ~255). */
export function chi2TwoSample(a: number[], b: number[]): number {
  const na = a.reduce((x, y) => x + y, 0), nb = b.reduce((x, y) => x + y, 0);
  let chi = 0;
  for (let i = 0; i < 256; i++) {
    const t = a[i]! + b[i]!;
    if (t) chi += (Math.sqrt(nb / na) * a[i]! - Math.sqrt(na / nb) * b[i]!) ** 2 / t;
  }
  return chi;
}

/** A bound that a chi-square with 255 degrees of freedom exceeds with probability < 1e-8. */
export const CHI2_255_BOUND = 255 + 6 * Math.sqrt(510);

export function onesFraction(frames: Uint8Array[]): number {
  let ones = 0, n = 0;
  for (const f of frames) for (const b of f) { let x = b; for (; x; x >>= 1) ones += x & 1; n += 8; }
  return ones / n;
}
