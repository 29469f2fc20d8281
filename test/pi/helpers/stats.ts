// Statistical checks for frames that should look uniformly random: byte histograms, chi-square against uniform and
// between two samples, bit balance. Bounds are mean + 6 sigma of the chi-square (255 degrees of freedom): a false
// alarm has probability far below 1e-6, while a frame carrying structure (an image, a fixed mask) fails at once.
export function byteHistogram(chunks: readonly Uint8Array[]): number[] {
  const h = new Array<number>(256).fill(0);
  for (const c of chunks) for (const b of c) h[b]!++;
  return h;
}

const total = (h: readonly number[]) => h.reduce((a, b) => a + b, 0);

/** Pearson's chi-square of a byte histogram against the uniform distribution. */
export function chiSquareUniform(h: readonly number[]): number {
  const e = total(h) / 256;
  return h.reduce((a, o) => a + (o - e) ** 2 / e, 0);
}

/** Two-sample chi-square of two byte histograms (are they draws of one distribution?). */
export function chiSquareTwoSample(a: readonly number[], b: readonly number[]): number {
  const na = total(a),
    nb = total(b);
  let chi = 0;
  for (let i = 0; i < 256; i++) {
    const t = a[i]! + b[i]!;
    if (t) chi += (Math.sqrt(nb / na) * a[i]! - Math.sqrt(na / nb) * b[i]!) ** 2 / t;
  }
  return chi;
}

/** Mean + 6 sigma of a chi-square with 255 degrees of freedom. */
export const CHI2_255_BOUND = 255 + 6 * Math.sqrt(2 * 255);

const popcount = (b: number) => {
  let c = 0;
  for (; b; b >>= 1) c += b & 1;
  return c;
};

/** Fraction of one bits, and its allowed deviation from 1/2 (6 sigma). */
export function bitBalance(h: readonly number[]): { ones: number; tolerance: number } {
  const n = 8 * total(h);
  let ones = 0;
  for (let b = 0; b < 256; b++) ones += h[b]! * popcount(b);
  return { ones: ones / n, tolerance: (6 * 0.5) / Math.sqrt(n) };
}
