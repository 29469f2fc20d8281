import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePacking, ConvLayout, polyphase, type LinearGeometry, type Packing } from '../../../src/pi/he/layout.js';

const N = 8192;

function lcg(seed: number): (k: number) => number {
  let s = seed >>> 0;
  return (k) => Math.floor(((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * k);
}

function geometry(
  C: number,
  H: number,
  O: number,
  k: number,
  stride: number,
  pad: number,
  dilation = 1,
  groups = 1,
): LinearGeometry {
  const Ho = Math.floor((H + 2 * pad - dilation * (k - 1) - 1) / stride) + 1;
  return { C, H, W: H, O, Ho, Wo: Ho, kh: k, kw: k, stride, pad, dilation, groups };
}

/** Direct convolution (small integers, exact in doubles). */
function convRef(g: LinearGeometry, x: Int32Array, w: Int32Array): Float64Array {
  const out = new Float64Array(g.O * g.Ho * g.Wo),
    cin = g.C / g.groups,
    cout = g.O / g.groups;
  for (let o = 0; o < g.O; o++) {
    const grp = Math.floor(o / cout);
    for (let y = 0; y < g.Ho; y++) {
      for (let xx = 0; xx < g.Wo; xx++) {
        let s = 0;
        for (let c = 0; c < cin; c++) {
          for (let i = 0; i < g.kh; i++) {
            for (let j = 0; j < g.kw; j++) {
              const yi = y * g.stride + i * g.dilation - g.pad,
                xi = xx * g.stride + j * g.dilation - g.pad;
              if (yi < 0 || yi >= g.H || xi < 0 || xi >= g.W) continue;
              s += x[((grp * cin + c) * g.H + yi) * g.W + xi]! * w[((o * cin + c) * g.kh + i) * g.kw + j]!;
            }
          }
        }
        out[(o * g.Ho + y) * g.Wo + xx] = s;
      }
    }
  }
  return out;
}

/** The encoding in the clear: per response, sum over input groups of the negacyclic products x * k. */
function convEncoded(l: ConvLayout, x: Int32Array, w: Int32Array): Float64Array {
  const g = l.g,
    out = new Float64Array(g.O * g.Ho * g.Wo).fill(NaN);
  for (let og = 0; og < l.outGroups; og++) {
    const ks = Array.from({ length: l.inGroups }, (_, ig) => l.kernel(ig, og, w));
    for (let t = 0; t < l.tiles; t++) {
      const acc = new Float64Array(N);
      ks.forEach((k, ig) => {
        if (!k) return;
        const { idx, src } = l.input(t, ig);
        const kn: number[] = [];
        k.forEach((v, i) => {
          if (v) kn.push(i);
        });
        idx.forEach((pi, j) => {
          const xv = x[src[j]!]!;
          for (const ki of kn) {
            const d = pi + ki;
            if (d < N) acc[d]! += xv * k[ki]!;
            else acc[d - N]! -= xv * k[ki]!;
          }
        });
      });
      const { idx, src } = l.output(t, og);
      idx.forEach((pi, j) => {
        assert.ok(Number.isNaN(out[src[j]!]!), `output ${src[j]} kept twice`);
        out[src[j]!] = acc[pi]!;
      });
    }
  }
  return out;
}

const cases: [string, LinearGeometry, Packing[]][] = [
  [
    '3x3 stride 1 pad 1',
    geometry(5, 9, 6, 3, 1, 1),
    [
      { th: 9, tw: 9, cw: 5, on: 6 },
      { th: 4, tw: 3, cw: 2, on: 3 },
    ],
  ],
  [
    '3x3 stride 2 pad 1 (polyphase, 4 phases)',
    geometry(4, 10, 5, 3, 2, 1),
    [
      { th: 5, tw: 5, cw: 16, on: 5 },
      { th: 2, tw: 3, cw: 3, on: 2 },
    ],
  ],
  [
    '1x1 stride 2 downsample (1 phase kept)',
    geometry(6, 8, 7, 1, 2, 0),
    [
      { th: 4, tw: 4, cw: 6, on: 7 },
      { th: 3, tw: 1, cw: 4, on: 2 },
    ],
  ],
  [
    '5x5 dilation 2 pad 4',
    geometry(3, 7, 2, 5, 1, 4, 2),
    [
      { th: 7, tw: 7, cw: 3, on: 2 },
      { th: 3, tw: 5, cw: 1, on: 1 },
    ],
  ],
  ['3x3 stride 3 dilation 2', geometry(2, 11, 3, 3, 3, 2, 2), [{ th: 4, tw: 4, cw: 2, on: 3 }]],
  [
    'depthwise 1x1 (a lone BatchNorm)',
    geometry(6, 6, 6, 1, 1, 0, 1, 6),
    [
      { th: 6, tw: 6, cw: 2, on: 2 },
      { th: 6, tw: 6, cw: 6, on: 6 },
      { th: 2, tw: 6, cw: 4, on: 1 },
    ],
  ],
  [
    'grouped 3x3, 2 groups',
    geometry(4, 6, 6, 3, 1, 1, 1, 2),
    [
      { th: 6, tw: 6, cw: 2, on: 3 },
      { th: 3, tw: 3, cw: 3, on: 2 },
    ],
  ],
  [
    'fully connected',
    { C: 300, H: 1, W: 1, O: 40, Ho: 1, Wo: 1, kh: 1, kw: 1, stride: 1, pad: 0, dilation: 1, groups: 1 },
    [
      { th: 1, tw: 1, cw: 300, on: 27 },
      { th: 1, tw: 1, cw: 64, on: 40 },
    ],
  ],
];

test('the coefficient encoding computes the convolution at the kept positions (strides, padding, dilation, groups, fc, several ciphertexts)', () => {
  const rnd = lcg(3);
  for (const [name, g, packings] of cases) {
    const x = Int32Array.from({ length: g.C * g.H * g.W }, () => rnd(201) - 100);
    const w = Int32Array.from({ length: g.O * (g.C / g.groups) * g.kh * g.kw }, () => rnd(201) - 100);
    const want = convRef(g, x, w);
    for (const pk of packings) {
      const l = new ConvLayout(g, pk, N, name);
      assert.deepEqual(Array.from(convEncoded(l, x, w)), Array.from(want), `${name}, packing ${JSON.stringify(pk)}`);
    }
  }
});

test('several ciphertexts: tiles, input groups and output groups all split; empty kernels of grouped convs are skipped', () => {
  const l = new ConvLayout(geometry(5, 9, 6, 3, 1, 1), { th: 4, tw: 3, cw: 2, on: 3 }, N, 't');
  assert.deepEqual([l.tiles, l.inGroups, l.outGroups, l.uploads, l.responses], [9, 3, 2, 27, 18]);
  const dw = new ConvLayout(geometry(6, 6, 6, 1, 1, 0, 1, 6), { th: 6, tw: 6, cw: 2, on: 2 }, N, 'dw');
  assert.deepEqual(
    dw.live.map((r) => r.map(Number)),
    [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ],
  );
  assert.equal(dw.kernel(0, 1, new Int32Array(6).fill(1)), null);
});

test('polyphase: a 1x1 stride-2 conv reads one phase of four; 3x3 stride 2 reads all four with 2x2 phase kernels', () => {
  const a = polyphase(geometry(8, 16, 8, 1, 2, 0), 'a'),
    b = polyphase(geometry(8, 16, 8, 3, 2, 1), 'b');
  assert.deepEqual([a.phases.length, a.cp, a.hp, a.kh], [1, 8, 8, 1]);
  assert.deepEqual([b.phases.length, b.cp, b.hp, b.kh], [4, 32, 9, 2]);
});

test('bad geometry and packings are refused with the layer named', () => {
  const g = geometry(5, 9, 6, 3, 1, 1);
  assert.throws(
    () => new ConvLayout(g, { th: 9, tw: 9, cw: 5, on: 7 }, N, 'layer1'),
    /layer1: packing .* exceeds the layer/,
  );
  assert.throws(
    () => new ConvLayout(g, { th: 9, tw: 9, cw: 5, on: 6 }, 2048, 'layer1'),
    /layer1: packing .* needs 3630 coefficients, the ring has 2048/,
  );
  assert.throws(() => new ConvLayout(g, { th: 0, tw: 9, cw: 5, on: 6 }, N, 'layer1'), /layer1: packing th = 0/);
  assert.throws(
    () => new ConvLayout({ ...g, Ho: 8 }, { th: 1, tw: 1, cw: 1, on: 1 }, N, 'layer1'),
    /layer1: output 8x9 differs/,
  );
  assert.throws(() => polyphase({ ...g, groups: 2 }, 'layer1'), /do not split into 2 groups/);
});

test('the cost model picks valid packings; more bandwidth buys fewer kernel NTTs', () => {
  const g = geometry(64, 32, 64, 3, 1, 1);
  const slow = choosePacking(g, N, 6, 78, 67, () => true, {
    ntt: 25e-6,
    dotTerm: 3e-6,
    response: 1.2e-3,
    upload: 0.6e-3,
    bandwidth: 1e6,
    memory: 512e6,
  });
  const fast = choosePacking(g, N, 6, 78, 67, () => true, {
    ntt: 25e-6,
    dotTerm: 3e-6,
    response: 1.2e-3,
    upload: 0.6e-3,
    bandwidth: 1e10,
    memory: 512e6,
  });
  for (const c of [slow, fast]) assert.doesNotThrow(() => new ConvLayout(g, c.pk, N, 'c'));
  assert.ok(
    slow.bytes <= fast.bytes && fast.kernelPolys <= slow.kernelPolys,
    `${JSON.stringify(slow)} vs ${JSON.stringify(fast)}`,
  );
  assert.throws(() => choosePacking(g, N, 6, 78, 67, () => false, undefined, 'l9'), /l9: no packing fits/);
});
