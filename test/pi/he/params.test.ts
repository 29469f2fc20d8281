import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkParams,
  HE_PARAMS,
  HE_STANDARD_128,
  log2q,
  noiseBudget,
  type HeParams,
} from '../../../src/pi/he/params.js';
import { choosePacking, type LinearGeometry } from '../../../src/pi/he/layout.js';

const P = HE_PARAMS;

test('the parameter set meets the 128-bit row of the HE standard', () => {
  assert.doesNotThrow(() => checkParams(P));
  assert.equal(P.n, 8192);
  assert.ok(log2q(P) <= HE_STANDARD_128[8192]!, `log2 q = ${log2q(P)}`);
  assert.deepEqual(
    { 4096: HE_STANDARD_128[4096], 8192: HE_STANDARD_128[8192], 16384: HE_STANDARD_128[16384] },
    { 4096: 109, 8192: 218, 16384: 438 },
  );
});

test('parameter sets outside the table or with unsound primes or moduli are refused', () => {
  const bad: [Partial<HeParams>, RegExp][] = [
    [{ n: 4096 }, /exceeds 109 bits/], // 150-bit q at N = 4096
    [{ primes: [...P.primes, 1073233921, 1073184769, 1073053697] }, /exceeds 218 bits/], // 8 primes: 240 bits at N = 8192
    [{ n: 2000 }, /not in the 128-bit table/],
    [{ primes: [...P.primes.slice(0, 5), 1073692671] }, /not a prime/],
    [{ primes: [...P.primes.slice(0, 5), 1073692673 - 2 * 8192 + 2] }, /not a prime < 2\^30 equal to 1 mod 16384/],
    [{ eta: 8 }, /sigma/],
    [{ c1Bits: 76 }, /noise budget fails/], // c1 s rounding (n / 2 at 2^K) and the noise region need 2^77
    [{ c0Bits: 60 }, /response moduli/],
    [{ statBits: 30 }, /statistical security/],
    [{ sessionCoeffBits: 80 }, /noise region of 86 bits covers 2\^80 coefficients/],
    [{ primes: P.primes.slice(0, 4) }, /noise region of 56 bits covers 2\^26 coefficients/], // four primes: too few
    [{ decPrimes: 3 }, /cannot hold c1 s/],
  ];
  for (const [change, re] of bad) assert.throws(() => checkParams({ ...P, ...change }), re, JSON.stringify(change));
});

/** ResNet18's secret linear layers at 32x32 with 100 classes (CIFAR stem: 3x3 conv, no max-pool). */
function resnet18Layers(): { name: string; g: LinearGeometry }[] {
  const conv = (name: string, C: number, H: number, O: number, k: number, s: number, pad: number) => {
    const Ho = Math.floor((H + 2 * pad - k) / s) + 1;
    return { name, g: { C, H, W: H, O, Ho, Wo: Ho, kh: k, kw: k, stride: s, pad, dilation: 1, groups: 1 } };
  };
  const out = [conv('conv1', 3, 32, 64, 3, 1, 1)];
  let c = 64,
    h = 32;
  for (const [stage, w] of [64, 128, 256, 512].entries()) {
    for (const b of [0, 1]) {
      const s = stage > 0 && b === 0 ? 2 : 1;
      out.push(
        conv(`layer${stage + 1}.${b}.conv1`, c, h, w, 3, s, 1),
        conv(`layer${stage + 1}.${b}.conv2`, w, h / s, w, 3, 1, 1),
      );
      if (s === 2) out.push(conv(`layer${stage + 1}.${b}.downsample.0`, c, h, w, 1, 2, 0));
      c = w;
      h /= s;
    }
  }
  out.push({
    name: 'fc',
    g: { C: 512, H: 1, W: 1, O: 100, Ho: 1, Wo: 1, kh: 1, kw: 1, stride: 1, pad: 0, dilation: 1, groups: 1 },
  });
  return out;
}

test('the worst-case noise budget holds for every layer of ResNet18 (32x32, 100 classes) at the chosen packings', () => {
  const maxWeight = 2 ** 15 - 1;
  let layers = 0,
    coeffs = 0;
  for (const l of resnet18Layers()) {
    const g = l.g;
    const c = choosePacking(
      g,
      P.n,
      P.primes.length,
      P.c1Bits,
      P.c0Bits,
      (taps) => noiseBudget(P, taps * maxWeight).marginBits > 0,
    );
    const taps = Math.min(c.pk.on, g.O) * g.C * g.kh * g.kw;
    const b = noiseBudget(P, taps * maxWeight);
    // the noise region (flooded whole): its statistical distance 3 / (2 W) per coefficient, W >= 2^(floodBits - 1),
    // stays under 2^-statBits over a session's 2^sessionCoeffBits coefficients; above an honest upload's weight
    // noise; decryption within 1 of M c - s
    assert.equal(b.floodBits, 86);
    assert.ok(b.floodBits - 2 >= P.statBits + P.sessionCoeffBits, `${l.name}: flooding ${b.floodBits} bits`);
    assert.ok(2 ** b.floodBits >= 2 ** P.statBits * b.weightNoise, `${l.name}: flooding ${b.floodBits} bits`);
    assert.ok(
      b.decryptNoise < b.decryptLimit && b.marginBits > 0,
      `${l.name}: noise ${b.decryptNoise} >= ${b.decryptLimit}`,
    );
    assert.ok(b.floodBits <= 128, `${l.name}: flooding ${b.floodBits} bits`);
    layers++;
    coeffs += g.O * g.Ho * g.Wo;
  }
  assert.equal(layers, 21);
  // the session's decrypted coefficients are within what the flooding covers
  assert.ok(coeffs <= 2 ** P.sessionCoeffBits, `${coeffs} decrypted coefficients`);
  // and the budget itself is tight enough to fail where it should: a kernel norm whose noise reaches the noise
  // region (2^82 x 21.5 at q, 2^14.4 at 2^78) breaks it; the ResNet18 layers (<= 2^31) are far from it
  assert.ok(noiseBudget(P, 2 ** 82).marginBits < 0);
  assert.ok(noiseBudget(P, 2 ** 70).marginBits > 0);
  assert.ok(noiseBudget({ ...P, c0Bits: 64 + 1, c1Bits: 66 }, 1).marginBits < 0);
});
