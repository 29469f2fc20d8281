// Max pooling under PI: the comparison tree (linear/pool.ts) and the secure max pool on shares (relu/maxpool.ts)
// equal the plaintext max over each window's valid elements (padding never wins) for every ReLU protocol, on random
// windows with ties and negative values; a plan with a max pool is checked, and one that lies about it refused.
// Mutations tried: a wrong tree pairing (b = a), max(a, b) as a + ReLU(a − b), the difference reversed: the secure
// max pool fails for every protocol; the clear max read unsigned, or a zero padding winning: the reference tests fail.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { channelPair } from '../../src/pi/transport/channel.js';
import { makeReluProtocol, RELU_PROTOCOLS } from '../../src/pi/relu/registry.js';
import type { ReluClient, ReluServer, ReluSite } from '../../src/pi/relu/index.js';
import {
  clientMaxPoolShares,
  clientOfflineMaxPool,
  clientOnlineMaxPool,
  serverOnlineMaxPool,
} from '../../src/pi/relu/maxpool.js';
import { maxPoolComparisons, maxPoolSchedule, ringMaxPoolClear } from '../../src/pi/linear/pool.js';
import { r64Add, r64FromBig, r64Sub, r64ToBig } from '../../src/pi/fixed.js';
import { clientRandomness, randomR64, serverRandomness, systemRandom } from '../../src/pi/random.js';
import type { ConvGeometry } from '../../src/pi/ringlinear.js';
import { checkPlan, maxPoolSites, planComparisons, planDigest, type PublicPlan } from '../../src/pi/plan.js';
import { randBig } from './helpers.js';

const geom = (c: number, h: number, w: number, k: number, s: number, p: number): ConvGeometry => {
  const o = (n: number) => Math.floor((n + 2 * p - k) / s) + 1;
  return { inShape: [c, h, w], outShape: [c, o(h), o(w)], kernel: k, stride: s, padding: p, dilation: 1, groups: c };
};

/** The max over each window's valid elements in BigInt: the reference, written apart from the code under test. */
function maxPoolBig(x: bigint[], g: ConvGeometry): bigint[] {
  const [c, h, w] = g.inShape,
    [, oh, ow] = g.outShape,
    out: bigint[] = [];
  for (let ch = 0; ch < c; ch++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++) {
        let m: bigint | null = null;
        for (let ky = 0; ky < g.kernel; ky++)
          for (let kx = 0; kx < g.kernel; kx++) {
            const iy = oy * g.stride - g.padding + ky,
              ix = ox * g.stride - g.padding + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const v = x[(ch * h + iy) * w + ix]!;
            if (m === null || v > m) m = v;
          }
        out.push(m!);
      }
  return out;
}

/**
 * Values for a max pool: negative ones (so that a zero padding would win where it must not), ties (a value repeated
 * across a window), values near the headroom bound (|x| < 2^(width-2)), and small random ones.
 */
function values(n: number, width: number): bigint[] {
  const H = 1n << BigInt(width - 2);
  return Array.from({ length: n }, (_, i) => {
    switch (i % 7) {
      case 0:
        return -5n; // ties, and negative
      case 1:
        return -(randBig(20) + 1n);
      case 2:
        return H - 1n - randBig(8);
      case 3:
        return -H + 1n + randBig(8);
      case 4:
        return 7n; // ties
      default:
        return (randBig(24) % (1n << 23n)) - (1n << 22n);
    }
  }).map((v, i) => (i % 11 === 10 ? -(1n + randBig(10)) : v));
}

const M = 1n << 64n;
const mod = (v: bigint) => ((v % M) + M) % M;
const signed = (v: bigint) => (v >= M / 2n ? v - M : v);

/** A plan with one max pool over an input of `g.inShape` (for its sites), at scale f. */
function poolPlan(g: ConvGeometry, width: number, f = 12, reluIntBits = width - f - 2): PublicPlan {
  const body = {
    format: 'deepreduce-pi-plan' as const,
    arch: 'pool',
    fixed: { f, weightFrac: 12, weightBits: 16, reluIntBits },
    ops: [
      { op: 'input' as const, name: 'input', shape: [...g.inShape], size: g.inShape.reduce((a, b) => a * b), scale: f },
      {
        op: 'maxpool' as const,
        name: 'maxpool',
        input: 0,
        geom: g,
        width,
        shape: [...g.outShape],
        size: g.outShape.reduce((a, b) => a * b),
        scale: f,
      },
    ],
    input: { mean: [], std: [] },
    relus: 0,
    culledSites: 0,
    macs: 0,
  };
  return { ...body, digest: planDigest(body) };
}

// One session per protocol (its set-up runs the base OTs); a new plan op index per test keeps sites distinct.
const sessions = new Map<string, Promise<{ S: ReluServer; C: ReluClient; close: () => void }>>();
function session(name: string) {
  let p = sessions.get(name);
  if (!p) {
    const [s, c] = channelPair();
    const proto = makeReluProtocol(name);
    p = Promise.all([
      proto.server(s, { batch: 4096, random: serverRandomness() }),
      proto.client(c, { batch: 4096, random: clientRandomness() }),
    ]).then(([S, C]) => ({
      S,
      C,
      close: () => {
        s.close();
        c.close();
      },
    }));
    sessions.set(name, p);
  }
  return p;
}
after(async () => {
  for (const p of sessions.values()) (await p).close();
});

let plans = 0;
/** Runs a max pool on shares of x (input shares: b uniform, a = x − b); returns the reconstructed output. */
async function securePool(proto: string, g: ConvGeometry, x: bigint[], width: number): Promise<bigint[]> {
  const { S, C } = await session(proto);
  // Distinct site keys per run: pad the plan with inputs so the max pool sits at a new op index.
  const plan = poolPlan(g, width);
  const pad = plans++;
  const sites: ReluSite[] = maxPoolSites(plan, 1).map((s) => ({ ...s, op: s.op * 1000 + pad }));
  const t = maxPoolSchedule(g);
  const b = randomR64(systemRandom, x.length),
    a = r64Sub(r64FromBig(x.map(mod)), b);
  const masks = sites.map((s) => randomR64(systemRandom, s.size));
  const cp = clientMaxPoolShares(t, b, masks);
  await Promise.all([
    (async () => {
      for (const s of sites) await S.offline(s);
    })(),
    clientOfflineMaxPool(C, sites, cp),
  ]);
  const [zs] = await Promise.all([serverOnlineMaxPool(S, sites, t, a), clientOnlineMaxPool(C, sites)]);
  return Array.from(r64ToBig(r64Add(zs, cp.out)), (v) => BigInt(v));
}

const CASES: [string, ConvGeometry][] = [
  ['2x2/2', geom(3, 6, 8, 2, 2, 0)],
  ['3x3/2 padding 1', geom(2, 7, 9, 3, 2, 1)],
  ['3x3/2 padding 1, even input', geom(2, 8, 8, 3, 2, 1)],
  ['3x3/1 padding 1', geom(1, 5, 5, 3, 1, 1)],
];

test('the comparison tree: k − 1 comparisons over ceil(log2 k) levels per window, counted without building it', () => {
  for (const [name, g] of CASES) {
    const t = maxPoolSchedule(g);
    assert.equal(t.comparisons, maxPoolComparisons(g), name);
    assert.equal(
      t.levels.reduce((a, l) => a + l.a.length, 0),
      t.comparisons,
    );
    assert.equal(
      t.out.length,
      g.outShape.reduce((a, b) => a * b),
    );
  }
  // 3x3 padding 1 on 8x8: 9-element windows inside (4 levels), 6 on the top and left edges, 4 in the corner.
  const t = maxPoolSchedule(geom(1, 8, 8, 3, 2, 1));
  assert.equal(t.levels.length, 4);
  assert.equal(t.comparisons, 3 + 2 * 3 * 5 + 9 * 8);
  // the clear max over shifted 2x2 windows: 4x4 -> 2x2
  const x = r64FromBig([1n, -2n, 3n, 4n, -5n, -6n, -7n, -8n, 0n, 0n, -1n, -9n, 2n, 2n, -9n, -1n].map(mod));
  assert.deepEqual(
    Array.from(r64ToBig(ringMaxPoolClear(x, geom(1, 4, 4, 2, 2, 0))), (v) => BigInt(v)),
    [1n, 4n, 2n, -1n],
  );
});

test('the clear reference: padded positions never win (an all-negative input keeps negative maxima)', () => {
  for (const [name, g] of CASES) {
    const n = g.inShape.reduce((a, b) => a * b),
      x = values(n, 40).map((v) => (v >= 0n ? -v - 1n : v));
    const want = maxPoolBig(x, g);
    assert.ok(
      want.every((v) => v < 0n),
      name,
    );
    assert.deepEqual(
      Array.from(r64ToBig(ringMaxPoolClear(r64FromBig(x.map(mod)), g)), (v) => BigInt(v)),
      want,
      name,
    );
  }
});

for (const proto of RELU_PROTOCOLS) {
  test(`secure max pool (${proto}) equals the plaintext max on random windows with ties and negative values`, async () => {
    for (const [name, g] of CASES) {
      for (const width of [34, 64]) {
        const n = g.inShape.reduce((a, b) => a * b),
          x = values(n, width);
        const got = (await securePool(proto, g, x, width)).map((v) => signed(mod(v)));
        assert.deepEqual(got, maxPoolBig(x, g), `${proto} ${name} width ${width}`);
      }
    }
    // All equal: every comparison a tie.
    const g = geom(2, 5, 5, 3, 2, 1);
    const eq = new Array<bigint>(50).fill(-3n);
    assert.deepEqual(
      (await securePool(proto, g, eq, 34)).map((v) => signed(mod(v))),
      maxPoolBig(eq, g),
    );
  });
}

test('checkPlan: a max pool op is checked (width, scale, padding, totals bound) and counted', () => {
  const g = geom(2, 8, 8, 3, 2, 1),
    p = poolPlan(g, 34, 12, 20);
  checkPlan(JSON.parse(JSON.stringify(p)), 'test');
  assert.equal(planComparisons(p), maxPoolComparisons(g));
  const redigest = (q: PublicPlan): PublicPlan => {
    const { digest: _d, ...body } = q;
    return { ...body, digest: planDigest(body) };
  };
  const mutate = (f: (o: Record<string, unknown>) => void) => {
    const q = JSON.parse(JSON.stringify(p)) as PublicPlan;
    f(q.ops[1] as unknown as Record<string, unknown>);
    return redigest(q);
  };
  assert.throws(
    () =>
      checkPlan(
        mutate((o) => (o.width = 33)),
        'test',
      ),
    /width 33 is not scale 12/,
  );
  assert.throws(
    () =>
      checkPlan(
        mutate((o) => (o.scale = 13)),
        'test',
      ),
    /scale 13 is not its input's 12/,
  );
  assert.throws(() => checkPlan(poolPlan(geom(1, 4, 4, 3, 1, 2), 34, 12, 20), 'test'), /padding <= kernel \/ 2/);
  assert.throws(
    () =>
      checkPlan(p, 'test', {
        maxOps: 16,
        maxOpElements: 1 << 20,
        maxTotalElements: 1 << 22,
        maxRelus: 100,
        maxDim: 64,
        maxKernel: 31,
      }),
    /kept ReLUs and max-pool comparisons/,
  );
});
