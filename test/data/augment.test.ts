import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, deriveSeed } from '../../src/data/rng.js';
import { makeBatch, type AugmentOptions, type ImageSource } from '../../src/data/augment.js';
import { defaultAugment, evalAugment } from '../../src/data/registry.js';

function source(n: number, c: number, h: number, w: number, seed = 1): ImageSource {
  const r = new Rng(seed);
  const images = new Uint8Array(n * c * h * w).map(() => r.below(256));
  const labels = new Int32Array(n).map((_, i) => i % 7);
  return { images, labels, n, c, h, w };
}

/** Straightforward reference: build the zero-padded canvas, cut the crop window, flip, normalise. */
function reference(src: ImageSource, indices: number[], aug: AugmentOptions, seed: number): Float32Array {
  const { c, h, w } = src;
  const H = aug.padTo ?? h;
  const W = aug.padTo ?? w;
  const ey = (H - h) / 2;
  const ex = (W - w) / 2;
  const p = aug.crop ?? 0;
  const PW = W + 2 * p;
  const out: number[] = [];
  const rng = new Rng(seed);
  for (const idx of indices) {
    const dy = p > 0 ? rng.below(2 * p + 1) : p;
    const dx = p > 0 ? rng.below(2 * p + 1) : p;
    const flip = aug.flip ? rng.u32() >>> 31 === 1 : false;
    for (let ch = 0; ch < c; ch++) {
      const canvas = new Array<number>((H + 2 * p) * PW).fill(0);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          canvas[(y + ey + p) * PW + x + ex + p] = src.images[((idx * c + ch) * h + y) * w + x]!;
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          const xx = flip ? W - 1 - x : x;
          out.push(Math.fround((canvas[(y + dy) * PW + xx + dx]! / 255 - aug.mean[ch]!) / aug.std[ch]!));
        }
    }
  }
  return Float32Array.from(out);
}

test('Rng: seeded, reproducible, in range, unbiased enough, shuffle is a permutation', () => {
  const a = new Rng(42),
    b = new Rng(42),
    c = new Rng(43);
  const sa = Array.from({ length: 8 }, () => a.u32());
  assert.deepEqual(
    sa,
    Array.from({ length: 8 }, () => b.u32()),
  );
  assert.notDeepEqual(
    sa,
    Array.from({ length: 8 }, () => c.u32()),
  );
  // pinned: a change here changes every shuffle and augmentation of every run
  assert.deepEqual(
    Array.from(
      { length: 3 },
      (
        (r) => () =>
          r.u32()
      )(new Rng(0)),
    ),
    [3809008728, 1133695204, 53579671],
  );
  const r = new Rng(7);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100000; i++) counts[r.below(10)]++;
  for (const k of counts) assert.ok(Math.abs(k - 10000) < 500, `bucket ${k}`);
  const perm = new Rng(3).shuffle(Int32Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(
    [...perm].sort((x, y) => x - y),
    Array.from({ length: 1000 }, (_, i) => i),
  );
  assert.notDeepEqual([...perm.subarray(0, 10)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notEqual(deriveSeed(1, 0, 5), deriveSeed(1, 0, 6));
  assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 1));
  assert.throws(() => r.below(0), /n must be/);
});

test('makeBatch: crop + flip + padTo + normalise match a naive reference exactly', () => {
  for (const [src, aug] of [
    [source(9, 3, 6, 5), { crop: 2, flip: true, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] }],
    [source(7, 1, 4, 4), { padTo: 8, crop: 3, flip: true, mean: [0.3], std: [0.4] }],
    [source(5, 1, 28, 28), { padTo: 32, crop: 4, flip: false, mean: [0.286], std: [0.353] }],
    [source(4, 2, 3, 3), { crop: 5, flip: true, mean: [0, 0], std: [1, 1] }], // crop larger than the image
  ] as [ImageSource, AugmentOptions][]) {
    const idx = [3, 0, 2, 2, 1];
    for (const seed of [1, 2, 3]) {
      const { x, y } = makeBatch(src, idx, aug, seed);
      assert.deepEqual(x, reference(src, idx, aug, seed));
      assert.deepEqual(
        [...y],
        idx.map((i) => i % 7),
      );
    }
  }
});

test('makeBatch: without augmentation it is exact normalisation; 28 -> 32 pads 2 px of raw zeros', () => {
  const src = source(3, 1, 28, 28);
  const aug: AugmentOptions = { padTo: 32, mean: [0.5], std: [0.25] };
  const { x } = makeBatch(src, [1], aug, 0);
  assert.equal(x.length, 32 * 32);
  const zero = Math.fround((0 - 0.5) / 0.25);
  for (const [r, c] of [
    [0, 0],
    [1, 31],
    [31, 5],
    [2, 1],
    [29, 30],
  ])
    assert.equal(x[r! * 32 + c!], zero);
  assert.equal(x[2 * 32 + 2], Math.fround((src.images[784]! / 255 - 0.5) / 0.25));
  assert.equal(x[29 * 32 + 29], Math.fround((src.images[784 + 27 * 28 + 27]! / 255 - 0.5) / 0.25));
  // same seed, same batch; different seed, (almost surely) different crops
  const a: AugmentOptions = { crop: 4, flip: true, mean: [0.5], std: [0.25] };
  const s = source(32, 1, 28, 28);
  const all = Array.from({ length: 32 }, (_, i) => i);
  assert.deepEqual(makeBatch(s, all, a, 9).x, makeBatch(s, all, a, 9).x);
  assert.notDeepEqual(makeBatch(s, all, a, 9).x, makeBatch(s, all, a, 10).x);
});

test('augmentation defaults: flips off for digits, 28x28 padded to 32 on request, eval has no randomness; bad options rejected', () => {
  const st = { mean: [0.1], std: [0.3], h: 28, w: 28 };
  assert.equal(defaultAugment('mnist', st).flip, false);
  assert.equal(defaultAugment('fashion-mnist', st).flip, true);
  assert.equal(defaultAugment('fashion-mnist', st, { padTo32: true }).padTo, 32);
  assert.equal(defaultAugment('cifar10', { ...st, h: 32, w: 32 }, { padTo32: true }).padTo, undefined);
  const ev = evalAugment(defaultAugment('fashion-mnist', st, { padTo32: true }));
  assert.deepEqual(ev, { padTo: 32, crop: 0, flip: false, mean: [0.1], std: [0.3] });
  const src = source(2, 1, 5, 5);
  assert.throws(() => makeBatch(src, [0], { padTo: 6, mean: [0], std: [1] }, 0), /padTo 6: cannot pad 5x5/);
  assert.throws(() => makeBatch(src, [2], { mean: [0], std: [1] }, 0), /image index 2 is outside \[0, 2\)/);
});
