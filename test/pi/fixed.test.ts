import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  r64Add,
  r64FromBig,
  r64Neg,
  r64Sar,
  r64Shl,
  r64Shr,
  r64Sub,
  r64ToBig,
  truncClientShare,
  truncServerShare,
  quantize,
  dequantize,
  r64Low,
  r64FromBytes,
  r64ToBytes,
  type R64,
} from '../../src/pi/fixed.js';
import { r64Random } from '../../src/pi/random.js';
import { RingConv2d, RingFc, limbPlan, ringChannelSum } from '../../src/pi/node/ring.js';
import type { ConvGeometry } from '../../src/pi/ringlinear.js';
import { delphiReluCircuit } from '../../src/pi/relu/gc/circuit.js';
import { evalPlainSplit } from '../../src/pi/gc/circuit.js';
import { joinRingBig } from '../../src/pi/gc/ring.js';

const M = 1n << 64n;
const u = (v: bigint) => ((v % M) + M) % M;
const big = (x: R64) => Array.from(r64ToBig(x), (v) => u(v));

/** Random ring values with extremes mixed in. */
function ringValues(n: number): R64 {
  const x = r64Random(n);
  const edge = [0n, 1n, M - 1n, 1n << 63n, (1n << 63n) - 1n, 0xffffffffn, 1n << 32n];
  const e = r64FromBig(edge);
  for (let i = 0; i < Math.min(n, edge.length); i++) {
    x.lo[i] = e.lo[i]!;
    x.hi[i] = e.hi[i]!;
  }
  return x;
}

test('ring arithmetic mod 2^64 equals BigInt: add, sub, neg, shifts, local truncation, bytes', () => {
  const a = ringValues(500),
    b = r64Random(500);
  const A = big(a),
    B = big(b);
  assert.deepEqual(
    big(r64Add(a, b)),
    A.map((v, i) => u(v + B[i]!)),
  );
  assert.deepEqual(
    big(r64Sub(a, b)),
    A.map((v, i) => u(v - B[i]!)),
  );
  assert.deepEqual(
    big(r64Neg(a)),
    A.map((v) => u(-v)),
  );
  const signed = (v: bigint) => (v >= 1n << 63n ? v - M : v);
  for (const d of [0, 1, 12, 31, 32, 33, 50, 63]) {
    assert.deepEqual(
      big(r64Shl(a, d)),
      A.map((v) => u(v << BigInt(d))),
      `shl ${d}`,
    );
    assert.deepEqual(
      big(r64Shr(a, d)),
      A.map((v) => v >> BigInt(d)),
      `shr ${d}`,
    );
    assert.deepEqual(
      big(r64Sar(a, d)),
      A.map((v) => u(signed(v) >> BigInt(d))),
      `sar ${d}`,
    );
  }
  assert.deepEqual(r64FromBytes(r64ToBytes(a), 500, 't'), a);
  assert.throws(() => r64FromBytes(new Uint8Array(12), 2, 'share of x'), /share of x: expected 16 bytes/);
  assert.deepEqual(Array.from(r64Low(r64FromBig([-1n, 5n]), 45)), [2 ** 45 - 1, 5]);
});

test('local share truncation: floor(x / 2^d) or +1 for small |x| with a uniform client share', () => {
  const n = 20000,
    d = 12;
  const xs = Array.from(
    { length: n },
    (_, i) => BigInt(Math.round((Math.random() - 0.5) * 2 ** 40)) + BigInt(i % 3) - 1n,
  );
  const x = r64FromBig(xs),
    c = r64Random(n),
    s = r64Sub(x, c);
  const t = r64ToBig(r64Add(truncServerShare(s, d), truncClientShare(c, d)));
  let plusOne = 0;
  xs.forEach((v, i) => {
    const e = t[i]! - (v >> BigInt(d));
    assert.ok(e === 0n || e === 1n, `x=${v}: error ${e}`);
    if (e === 1n) plusOne++;
  });
  // The +1 happens with probability ~ (x mod 2^d) / 2^d, i.e. about half the time here.
  assert.ok(plusOne > n * 0.4 && plusOne < n * 0.6, `${plusOne}`);
});

test('quantize / dequantize round trip and range check', () => {
  const x = [0, 1.5, -2.25, 1 / 4096, -3.999];
  assert.deepEqual(
    Array.from(dequantize(quantize(x, 12), 12)),
    x.map((v) => Math.round(v * 4096) / 4096),
  );
  assert.throws(() => quantize([2 ** 50], 12, 'input'), /input: value\[0\]/);
});

function convRef(x: bigint[], w: number[], g: ConvGeometry): bigint[] {
  const [ci, h, wd] = g.inShape,
    [co, ho, wo] = g.outShape,
    k = g.kernel,
    cig = ci / g.groups,
    cog = co / g.groups;
  const out: bigint[] = [];
  for (let o = 0; o < co; o++) {
    const grp = Math.floor(o / cog);
    for (let y = 0; y < ho; y++) {
      for (let xx = 0; xx < wo; xx++) {
        let s = 0n;
        for (let c = 0; c < cig; c++) {
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const iy = y * g.stride - g.padding + ky * g.dilation,
                ix = xx * g.stride - g.padding + kx * g.dilation;
              if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
              s += x[((grp * cig + c) * h + iy) * wd + ix]! * BigInt(w[((o * cig + c) * k + ky) * k + kx]!);
            }
          }
        }
        out.push(u(s));
      }
    }
  }
  return out;
}

test('limb conv2d on libtorch float64 is exact mod 2^64 (full-range shares, extreme 16-bit weights, groups, stride, padding)', () => {
  const geoms: ConvGeometry[] = [
    { inShape: [3, 7, 7], outShape: [4, 4, 4], kernel: 3, stride: 2, padding: 1, dilation: 1, groups: 1 },
    { inShape: [4, 5, 5], outShape: [4, 5, 5], kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 4 },
    { inShape: [64, 3, 3], outShape: [2, 3, 3], kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1 },
  ];
  for (const g of geoms) {
    const nW = g.outShape[0] * (g.inShape[0] / g.groups) * g.kernel ** 2;
    const w = Array.from({ length: nW }, (_, i) =>
      i % 5 === 0 ? 32767 : i % 5 === 1 ? -32767 : Math.round((Math.random() - 0.5) * 65534),
    );
    const x = ringValues(g.inShape.reduce((a, b) => a * b, 1));
    const conv = new RingConv2d('t', Float64Array.from(w), g);
    try {
      assert.deepEqual(big(conv.apply(x)), convRef(big(x), w, g));
    } finally {
      conv.dispose();
    }
  }
});

test('limb fc is exact at the largest accumulation; limb widths keep sums below 2^53', () => {
  const inSize = 4608,
    outSize = 3;
  const w = Array.from({ length: inSize * outSize }, (_, i) => (i & 1 ? 32767 : -32767));
  const x = r64FromBig(Array.from({ length: inSize }, () => M - 1n));
  const fc = new RingFc('fc', Float64Array.from(w), inSize, outSize);
  try {
    const X = big(x);
    const ref = Array.from({ length: outSize }, (_, o) =>
      u(X.reduce((s, v, i) => s + v * BigInt(w[o * inSize + i]!), 0n)),
    );
    assert.deepEqual(big(fc.apply(x)), ref);
  } finally {
    fc.dispose();
  }
  const { bits, limbs } = limbPlan(32767, 4608, 'x');
  assert.ok((2 ** bits - 1) * 32767 * 4608 < 2 ** 53 && bits * limbs >= 64, `${bits} x ${limbs}`);
  assert.throws(() => limbPlan(2 ** 40, 2 ** 10, 'huge'), /huge: integer weights/);
  const s = ringChannelSum({ lo: x.lo.subarray(0, 8), hi: x.hi.subarray(0, 8) }, [2, 2, 2]);
  assert.deepEqual(big(s), [u(-4n), u(-4n)]);
});

test('Delphi ReLU circuit: z = (ReLU(a + b mod 2^w) >> shift) - r mod 2^64 on edge and random inputs', () => {
  for (const [w, sh] of [
    [45, 12],
    [64, 24],
    [20, 0],
  ] as const) {
    const c = delphiReluCircuit(w, sh);
    const W = 1n << BigInt(w);
    const xs = [0n, 1n, -1n, W / 2n - 1n, -W / 2n, 4096n, -4096n, 4095n, 123456789n];
    const n = 300;
    const a: bigint[] = [],
      b: bigint[] = [],
      r: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const x = i < xs.length ? xs[i]! : BigInt(Math.round((Math.random() - 0.5) * 2 ** Math.min(w - 1, 50)));
      const av = u(BigInt(Math.floor(Math.random() * 2 ** 32)) * BigInt(Math.floor(Math.random() * 2 ** 32))) % W;
      a.push(av);
      b.push((((x - av) % W) + W) % W);
      r.push(u(r64ToBig(r64Random(1))[0]!));
    }
    const out = evalPlainSplit(c, n, {
      a: BigUint64Array.from(a),
      b: BigUint64Array.from(b),
      r: BigUint64Array.from(r),
    }).z!;
    const z = joinRingBig(out.lo, out.hi);
    for (let i = 0; i < n; i++) {
      const x0 = (a[i]! + b[i]!) % W,
        x = x0 >= W / 2n ? x0 - W : x0;
      const y = (x > 0n ? x : 0n) >> BigInt(sh);
      assert.equal(z[i], u(y - r[i]!), `w=${w} x=${x}`);
    }
    assert.equal(c.numAnd, w - 1 + (w - 1 - sh) + 63);
  }
});
