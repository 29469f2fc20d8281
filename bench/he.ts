// The HE preprocessing alone (docs/pi-he.md), for ResNet18 at 32x32 with 100 classes (random weights):
//   --kernels   kernel microbenchmarks (minimum over repetitions: a loaded machine inflates it least) and, with
//               --seal, node-seal 6.0.3 (SEAL's BFV) at the same shape (N = 8192, six 30-bit primes)
//   --plan      the packing of every layer (cost model), its counts and bytes, the noise budget, and polyphase
//               against computing stride 1 and keeping every other output
//   --run       every secret linear layer through HePreprocessor (client and server in this process, one thread):
//               per layer wall, each party's compute, process CPU time and bytes; checked against the ring layers
//   --layer C,H,O,k,s,p   with --run: one conv (random 16-bit weights) instead of the model, e.g. Cheetah's
//               ResNet50 layer 256,14,256,3,1,1
// Usage: node dist/bench/he.js [--config full|C100_230K|C100_115K|C100_12K] [--kernels [--seal]] [--plan] [--run [--layer ...]]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { specFromOptions } from '../src/models/options.js';
import { serverModelRandom } from '../src/pi/node/load.js';
import { linearShapes, type LinearShape } from '../src/pi/linear/index.js';
import type { RingLinear } from '../src/pi/ringlinear.js';
import { convLayer, heRun } from './lib/he-layer.js';
import { HeEngine } from '../src/pi/he/kernels.js';
import { HE_PARAMS as P, noiseBudget } from '../src/pi/he/params.js';
import { choosePacking, convGeometry, fcGeometry, kernelTaps, type LinearGeometry } from '../src/pi/he/layout.js';

const { values: a } = parseArgs({
  options: {
    config: { type: 'string', default: 'full' },
    kernels: { type: 'boolean' },
    seal: { type: 'boolean' },
    plan: { type: 'boolean' },
    run: { type: 'boolean' },
    layer: { type: 'string' },
  },
});
if (!a.kernels && !a.plan && !a.run) throw new Error('give --kernels, --plan and/or --run');

/** Minimum time of f in microseconds over `reps` batches of `inner` calls. */
function minUs(f: () => void, reps = 100, inner = 10): number {
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) f();
    best = Math.min(best, (performance.now() - t0) / inner);
  }
  return best * 1000;
}

if (a.kernels) {
  const e = await HeEngine.create(P);
  const x = e.poly();
  P.primes.forEach((p, i) =>
    e.residues(x, i).forEach((_, k, r) => {
      r[k] = (k * 2654435761) % p;
    }),
  );
  const one = { ptr: x.ptr, primes: 1 };
  const terms = Array.from({ length: 15 }, () => [e.poly(), e.poly(), e.poly()] as [typeof x, typeof x, typeof x]);
  const o0 = e.poly(),
    o1 = e.poly(),
    w = e.alloc(12 * P.n);
  const rows: Record<string, number> = {
    'forward NTT, one prime (us)': minUs(() => e.forward(one)),
    'inverse NTT, one prime (us)': minUs(() => e.inverse(one)),
    'dot, 15 terms x 2 components, all six primes (us)': minUs(() => e.dot(o0, o1, terms), 30, 3),
    'product term, both components, one prime (us)': minUs(() => e.dot(o0, o1, terms), 30, 3) / 15 / P.primes.length,
    'switching N coefficients to 2^78 (us)': minUs(() => e.modSwitch(w, x, 0, P.n, 1), 30, 3),
  };
  // one 60-bit prime instead of two 30-bit ones: WebAssembly has no 64x64 -> 128 multiply and no 64-bit SIMD multiply
  const asc = (await import('assemblyscript/asc')).default;
  let bin: Uint8Array | null = null;
  const src = fileURLToPath(new URL('../../bench/asm/ntt60.ts', import.meta.url));
  const r = await asc.main([src, '-O3', '--runtime', 'stub', '--noAssert', '--outFile', 'n60.wasm'], {
    writeFile: (name: string, c: string | Uint8Array) => {
      if (name.endsWith('.wasm') && typeof c !== 'string') bin = c;
    },
  });
  if (r.error || !bin) throw new Error(`asc: ${r.error?.message ?? 'no output'}`);
  const wasm = (
    globalThis as unknown as {
      WebAssembly: { instantiate(b: Uint8Array, i: object): Promise<{ instance: { exports: unknown } }> };
    }
  ).WebAssembly;
  const n60 = (await wasm.instantiate(bin!, {})).instance.exports as {
    memory: { grow(p: number): number; buffer: ArrayBuffer };
    fwd60(a: number, t: number, n: number, p: bigint): void;
  };
  n60.memory.grow(100);
  const p60 = (1n << 60n) - (1n << 14n) + 1n,
    mem = new BigUint64Array(n60.memory.buffer);
  for (let i = 0; i < 2 * P.n; i++) mem[(1 << 20) / 8 + i] = BigInt(i * 12345 + 1) % p60;
  for (let i = 0; i < P.n; i++) mem[(2 << 20) / 8 + i] = (BigInt(i) * 99991n) % p60;
  rows['scalar NTT, one 60-bit prime (us)'] = minUs(() => n60.fwd60(2 << 20, 1 << 20, P.n, p60));
  console.table(Object.entries(rows).map(([k, v]) => ({ kernel: k, us: +v.toFixed(1) })));
  if (a.seal) {
    // node-seal's typings resolve to its web build here; the calls below are its documented API.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const seal = await ((await import('node-seal')).default as unknown as () => Promise<any>)();
    const parms = seal.EncryptionParameters(seal.SchemeType.bfv);
    parms.setPolyModulusDegree(P.n);
    parms.setCoeffModulus(seal.CoeffModulus.Create(P.n, Int32Array.from(P.primes.map(() => 30))));
    parms.setPlainModulus(seal.PlainModulus.Batching(P.n, 20)); // SEAL's plain modulus is at most 60 bits: no 2^64
    const ctx = seal.Context(parms, true, seal.SecurityLevel.tc128);
    const kg = seal.KeyGenerator(ctx),
      enc = seal.Encryptor(ctx, kg.createPublicKey(), kg.secretKey()),
      ev = seal.Evaluator(ctx);
    const pt = seal.BatchEncoder(ctx).encode(Int32Array.from({ length: P.n }, (_, i) => i % 100))!;
    const ct = enc.encryptSymmetric(pt)!,
      ptN = seal.PlainText(),
      out = seal.CipherText();
    ev.plainTransformToNtt(pt, ctx.firstParmsId, ptN);
    const ctN = ct.clone();
    ev.cipherTransformToNtt(ctN, ctN);
    console.table([
      {
        op: 'plaintext to NTT, six primes',
        seal_us: +minUs(() => ev.plainTransformToNtt(pt, ctx.firstParmsId, ptN), 10, 5).toFixed(0),
      },
      {
        op: 'ciphertext x plaintext, NTT domain',
        seal_us: +minUs(() => ev.multiplyPlain(ctN, ptN, out), 10, 5).toFixed(0),
      },
      {
        op: 'ciphertext from NTT (12 inverse NTTs)',
        seal_us: +minUs(
          () => {
            const c = ctN.clone();
            ev.cipherTransformFromNtt(c, c);
          },
          10,
          5,
        ).toFixed(0),
      },
      { op: 'symmetric encryption', seal_us: +minUs(() => enc.encryptSymmetric(pt), 10, 5).toFixed(0) },
    ]);
  }
}

if (!a.plan && !a.run) process.exit(0);
const { spec } =
  a.config === 'full'
    ? specFromOptions({ arch: 'resnet18', input: 32, classes: 100 })
    : specFromOptions({ preset: a.config, input: 32, classes: 100 });
const model = serverModelRandom(spec, 0);
let shapes = linearShapes(model.plan);
const layers = new Map<number, RingLinear>(shapes.map((s) => [s.op, model.secret[s.op]!.linear]));
if (a.layer) {
  const one = convLayer(a.layer);
  shapes = [one.shape];
  layers.set(one.shape.op, one.layer);
}
const geometry = (s: LinearShape): LinearGeometry => (s.geom ? convGeometry(s.geom) : fcGeometry(s.inSize, s.outSize));
const fits = (s: LinearShape) => (taps: number) => noiseBudget(P, taps * s.maxWeight).marginBits > 0;

if (a.plan) {
  const rows = shapes.map((s) => {
    const g = geometry(s),
      c = choosePacking(g, P.n, P.primes.length, P.c1Bits, P.c0Bits, fits(s));
    const b = noiseBudget(P, kernelTaps(g, c.pk.on) * s.maxWeight);
    const row: Record<string, unknown> = {
      layer: s.name,
      packing: `${c.pk.th}x${c.pk.tw} cw ${c.pk.cw} on ${c.pk.on}`,
      uploads: c.uploads,
      responses: c.responses,
      kernelPolys: c.kernelPolys,
      MB: +(c.bytes / 1e6).toFixed(2),
      floodBits: b.floodBits,
      margin: +b.marginBits.toFixed(2),
    };
    if (g.stride > 1) {
      // stride 1 everywhere, then only every s-th output kept (the others need not be sent)
      const hs = g.H + 2 * g.pad - g.dilation * (g.kh - 1),
        ws = g.W + 2 * g.pad - g.dilation * (g.kw - 1);
      const s1 = choosePacking({ ...g, stride: 1, Ho: hs, Wo: ws }, P.n, P.primes.length, P.c1Bits, P.c0Bits, fits(s));
      const dropped = Math.ceil((g.O * (hs * ws - g.Ho * g.Wo) * P.c0Bits) / 8);
      row.stride1_MB = +((s1.bytes - dropped) / 1e6).toFixed(2);
      row.stride1_kernelPolys = s1.kernelPolys;
    }
    return row;
  });
  console.table(rows);
  const sum = (k: string) => rows.reduce((t, r) => t + (r[k] as number), 0);
  console.log(
    `${a.config}: ${sum('kernelPolys')} kernel polynomials, ${sum('uploads')} uploads, ${sum('responses')} responses, ${sum('MB').toFixed(1)} MB + public key ${((P.n * 6 * 30) / 8 / 1e6).toFixed(2)} MB`,
  );
}

if (a.run) {
  const r = await heRun(shapes, layers);
  console.table(r.rows);
  console.log(
    `${a.config}: HE wall ${r.wallS.toFixed(2)} s, CPU ${r.cpuS.toFixed(2)} s (both parties; the checks against the ring layers excluded), server ${r.serverS.toFixed(2)} s, client ${r.clientS.toFixed(2)} s, ${r.MB.toFixed(1)} MB, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
}
model.dispose();
layers.get(1e6)?.dispose();
