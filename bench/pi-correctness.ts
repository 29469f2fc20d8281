// Correctness of the private-inference protocol on a trained model: for N test images, the secure logits against
// the fixed-point plaintext reference (max |diff| in ULPs of the output scale) and top-1 agreement with the float
// model. Images are split over --jobs processes (each runs client and server, and the dealer for --preprocess
// dealer, for its share).
// Usage: node dist/bench/pi-correctness.js --model DIR [--n 1000] [--from 0] [--jobs 1] [--dataset fashion-mnist]
//        [--preprocess he|dealer] [--relu ot|gc] [--data DIR] [--fit DIR,DIR [--fit-every 5]] [--f 12] [--weight-frac 12] [--json]
//    or: ... --arch NAME|--preset NAME [--input N] [--classes K] [--alpha A] [--seed S] [--dataset generated]
// With --arch/--preset the weights are random (seeded, as `pi bench --arch`) and --dataset generated (the default
// then) gives image i as seeded N(0,1) values: no labels, so secureAccuracy is not reported.
// gc is bit-exact with all ReLUs kept; ot adds 0 or +1 ULP (2^-f) per kept ReLU (local truncation, docs/pi.md).
// Partial sites (learned masks) pass their other elements through with the same local truncation.
// --fit: site-level models (same images, every --fit-every'th, interleaved with the model's sessions so that both see
// the same machine load) to which the cost model's online terms are fitted (calibrate(), src/pi/node/bench.ts); the
// output compares the model's measured online time with that estimate for its kept ReLUs.
import './lib/help.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { manualSeed, noGrad, tensor, tidy } from '../src/engine/index.js';
import { describeNetwork, runGraph } from '../src/models/index.js';
import { loadModelDir } from '../src/train/modeldir.js';
import { calibrate, piReport, type PiReport } from '../src/pi/node/bench.js';
import { datasetImage, serverModelFromDir, serverModelRandom } from '../src/pi/node/load.js';
import { buildNetwork } from '../src/models/build.js';
import { specFromOptions } from '../src/models/options.js';
import { referenceForward } from '../src/pi/node/compile.js';
import { defaultFixedPoint, type PublicPlan } from '../src/pi/plan.js';
import { estimateOnline } from '../src/pi/node/costmodel.js';
import { runClient, serveClient } from '../src/pi/protocol.js';
import { channelPair } from '../src/pi/transport/channel.js';
import { Dealer } from '../src/pi/node/dealer.js';
import { quantize, r64ToBig } from '../src/pi/fixed.js';
import { DEFAULT_RELU, makeReluProtocol } from '../src/pi/relu/registry.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    arch: { type: 'string' },
    preset: { type: 'string' },
    input: { type: 'string' },
    classes: { type: 'string' },
    alpha: { type: 'string' },
    seed: { type: 'string', default: '0' },
    n: { type: 'string', default: '1000' },
    from: { type: 'string', default: '0' },
    jobs: { type: 'string', default: '1' },
    dataset: { type: 'string' },
    data: { type: 'string' },
    json: { type: 'boolean' },
    part: { type: 'boolean' },
    preprocess: { type: 'string', default: 'he' },
    relu: { type: 'string', default: DEFAULT_RELU },
    fit: { type: 'string' },
    'fit-every': { type: 'string', default: '5' },
    f: { type: 'string' },
    'weight-frac': { type: 'string' },
  },
});
if (a.preprocess !== 'he' && a.preprocess !== 'dealer')
  throw new Error(`--preprocess must be he or dealer, got '${a.preprocess}'`);
if (!a.model === !(a.arch || a.preset))
  throw new Error(
    'usage: pi-correctness --model DIR | --arch NAME [--input N] [--classes K] [--seed S]  [--n 1000] [--from 0] [--jobs 1] [--dataset fashion-mnist|generated] [--preprocess he|dealer] [--relu ot|gc]',
  );
const posNum = (name: string, v: string | undefined) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got '${v}'`);
  return n;
};
// Random weights: the spec, and the seed that `pi bench --arch` uses for the same weights.
const RANDOM = a.model
  ? null
  : {
      spec: specFromOptions({
        ...(a.arch ? { arch: a.arch } : {}),
        ...(a.preset ? { preset: a.preset } : {}),
        input: posNum('input', a.input),
        classes: posNum('classes', a.classes),
        alpha: posNum('alpha', a.alpha),
      }).spec,
      seed: Number(a.seed),
    };
if (RANDOM && !Number.isInteger(RANDOM.seed)) throw new Error(`--seed must be an integer, got '${a.seed}'`);
const DATASET = a.dataset ?? (RANDOM ? 'generated' : 'fashion-mnist');
const MODEL_NAME = a.model ?? `${a.preset ?? a.arch} (random weights, seed ${a.seed})`;
const RELU = makeReluProtocol(a.relu!).name;
const N = Number(a.n),
  FROM = Number(a.from),
  JOBS = Math.max(1, Math.min(Number(a.jobs), N));
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(FROM) || FROM < 0 || !Number.isInteger(JOBS))
  throw new Error('--n, --from and --jobs must be integers (n, jobs >= 1)');
// The fixed-point format (plan.ts; defaults f = 12, weightFrac = 12), for every model of the run.
const FIXED = {
  ...(a.f !== undefined ? { f: Number(a.f) } : {}),
  ...(a['weight-frac'] !== undefined ? { weightFrac: Number(a['weight-frac']) } : {}),
};
const FIT = a.fit ? a.fit.split(',').filter(Boolean) : [],
  FIT_EVERY = Number(a['fit-every']);
if (!Number.isInteger(FIT_EVERY) || FIT_EVERY < 1)
  throw new Error(`--fit-every must be an integer >= 1, got '${a['fit-every']}'`);

/** Sums over a range of images; merged across processes. */
interface Part {
  images: number;
  maxUlp: string;
  agreeFloat: number;
  agreeRef: number;
  correct: number;
  maxReluBits: number;
  maxCullBits: number;
  onlineMs: number;
  offlineMs: number;
  relus: number;
  culledSites: number;
  outputScale: number;
  /** The model's sessions' reports (for its measured online ReLU time) and the --fit models' reports. */
  reports: PiReport[];
  fitReports: { model: string; report: PiReport }[];
}

const run = { relu: RELU, link: null, preprocess: a.preprocess!, transport: 'in-process pair' };

/** Image `i`: a dataset's test image, or seeded N(0,1) values (label -1) for --dataset generated. */
function image(plan: PublicPlan, i: number): { x: Float32Array; label: number } {
  if (DATASET !== 'generated') return datasetImage(plan, DATASET, i, a.data);
  // mulberry32 seeded by the index, then Box-Muller: the same image for the same index in every process.
  let t = (0x9e3779b9 * (i + 1)) >>> 0;
  const u = () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 2 ** 32;
  };
  const x = new Float32Array(plan.ops[0]!.size);
  for (let k = 0; k < x.length; k++) x[k] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return { x, label: -1 };
}

async function runRange(from: number, n: number, progress: (done: number, p: Part) => void): Promise<Part> {
  const model = RANDOM ? serverModelRandom(RANDOM.spec, RANDOM.seed, FIXED) : serverModelFromDir(a.model!, FIXED);
  if (RANDOM) manualSeed(RANDOM.seed);
  const net = RANDOM ? buildNetwork(RANDOM.spec).eval() : loadModelDir(a.model!).net;
  const nodes = describeNetwork(net);
  const plan = model.plan;
  // For --preprocess dealer the trusted dealer (a third party; in this process over channel pairs, as are the client
  // and the server).
  const dealer = a.preprocess === 'dealer' ? new Dealer(model) : null;
  const opts = () => ({ preprocess: a.preprocess, relu: RELU, ...(dealer ? { dealer: dealer.link() } : {}) });
  const [c, h, w] = plan.ops[0]!.shape as [number, number, number];
  const argmax = (v: ArrayLike<number>) => {
    let b = 0;
    for (let i = 1; i < v.length; i++) if (v[i]! > v[b]!) b = i;
    return b;
  };
  let maxUlp = 0n;
  const p: Part = {
    images: 0,
    maxUlp: '0',
    agreeFloat: 0,
    agreeRef: 0,
    correct: 0,
    maxReluBits: -64,
    maxCullBits: 0,
    onlineMs: 0,
    offlineMs: 0,
    relus: plan.relus,
    culledSites: plan.culledSites,
    outputScale: plan.ops[plan.ops.length - 1]!.scale,
    reports: [],
    fitReports: [],
  };
  const fits = FIT.map((dir) => ({ dir, model: serverModelFromDir(dir, FIXED) }));
  const fitDealers = fits.map((f) => (a.preprocess === 'dealer' ? new Dealer(f.model) : null));
  if (fits.length) {
    // One uncounted session per model first, so that neither side of the comparison pays the JIT's warm-up.
    const { x } = image(plan, from);
    for (const [m, d] of [[model, dealer] as const, ...fits.map((f, k) => [f.model, fitDealers[k]!] as const)]) {
      const o = () => ({ preprocess: a.preprocess, relu: RELU, ...(d ? { dealer: d.link() } : {}) });
      const [ws, wc] = channelPair();
      await Promise.all([serveClient(ws, m, o()), runClient(wc, x, o())]);
    }
  }
  for (let i = from; i < from + n; i++) {
    const { x, label } = image(plan, i);
    const [s, cl] = channelPair();
    const [, r] = await Promise.all([serveClient(s, model, opts()), runClient(cl, x, opts())]);
    const ref = referenceForward(model, quantize(x, plan.fixed.f));
    const sec = r64ToBig(r.out),
      rf = r64ToBig(ref.out);
    sec.forEach((v, k) => {
      const d = v > rf[k]! ? v - rf[k]! : rf[k]! - v;
      if (d > maxUlp) maxUlp = d;
    });
    for (const b of ref.reluBits) p.maxReluBits = Math.max(p.maxReluBits, b.bits - b.width);
    for (const b of ref.cullBits) p.maxCullBits = Math.max(p.maxCullBits, b.bits);
    const fl = tidy(() => noGrad(() => runGraph(nodes, tensor(x, [1, c, h, w])).toFloat32()));
    const ps = argmax(r.logits);
    if (ps === argmax(fl)) p.agreeFloat++;
    if (ps === argmax(ref.logits)) p.agreeRef++;
    if (label >= 0 && ps === label) p.correct++;
    p.onlineMs += r.client.phases.online.ms;
    p.offlineMs += r.client.phases.offline.ms;
    p.reports.push(piReport(r, run));
    if ((i - FROM) % FIT_EVERY === 0) {
      for (const [k, f] of fits.entries()) {
        const d = fitDealers[k],
          o = () => ({ preprocess: a.preprocess, relu: RELU, ...(d ? { dealer: d.link() } : {}) });
        const [fs, fc] = channelPair();
        const [, fr] = await Promise.all([serveClient(fs, f.model, o()), runClient(fc, x, o())]);
        p.fitReports.push({ model: f.dir, report: piReport(fr, run) });
      }
    }
    p.images++;
    p.maxUlp = maxUlp.toString();
    progress(p.images, p);
  }
  model.dispose();
  for (const f of fits) f.model.dispose();
  net.dispose();
  return p;
}

function merge(parts: Part[]): Part {
  const m = { ...parts[0]! };
  for (const p of parts.slice(1)) {
    m.images += p.images;
    m.agreeFloat += p.agreeFloat;
    m.agreeRef += p.agreeRef;
    m.correct += p.correct;
    m.onlineMs += p.onlineMs;
    m.offlineMs += p.offlineMs;
    m.maxReluBits = Math.max(m.maxReluBits, p.maxReluBits);
    m.maxCullBits = Math.max(m.maxCullBits, p.maxCullBits);
    if (BigInt(p.maxUlp) > BigInt(m.maxUlp)) m.maxUlp = p.maxUlp;
    m.reports = [...m.reports, ...p.reports];
    m.fitReports = [...m.fitReports, ...p.fitReports];
  }
  return m;
}

/** Runs the images over JOBS child processes; each reports progress lines `progress DONE` and its Part as JSON. */
async function runJobs(): Promise<Part> {
  const me = fileURLToPath(import.meta.url);
  const done = new Array<number>(JOBS).fill(0);
  const t0 = Date.now();
  const parts = await Promise.all(
    Array.from({ length: JOBS }, (_, j) => {
      const from = FROM + Math.floor((j * N) / JOBS),
        n = FROM + Math.floor(((j + 1) * N) / JOBS) - from;
      const args = [
        me,
        ...(a.model ? ['--model', a.model] : []),
        ...(['arch', 'preset', 'input', 'classes', 'alpha'] as const).flatMap((k) =>
          a[k] !== undefined ? [`--${k}`, a[k]!] : [],
        ),
        '--seed',
        a.seed!,
        '--from',
        String(from),
        '--n',
        String(n),
        '--dataset',
        DATASET,
        '--preprocess',
        a.preprocess!,
        '--relu',
        RELU,
        '--part',
        ...(a.data ? ['--data', a.data] : []),
        ...(FIT.length ? ['--fit', FIT.join(','), '--fit-every', String(FIT_EVERY)] : []),
        ...(a.f !== undefined ? ['--f', a.f] : []),
        ...(a['weight-frac'] !== undefined ? ['--weight-frac', a['weight-frac']] : []),
      ];
      // One libtorch thread per process: the processes are the parallelism.
      const child = spawn(process.execPath, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DEEPREDUCE_THREADS: '1' },
      });
      let out = '',
        err = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d;
      });
      child.stderr.on('data', (d: Buffer) => {
        err += d;
        for (const m of String(d).matchAll(/progress (\d+)/g)) done[j] = Number(m[1]);
        const total = done.reduce((s, v) => s + v, 0),
          el = (Date.now() - t0) / 1e3;
        // On stderr with --json too (stdout then holds only the JSON): a long run must show where it is.
        process.stderr.write(
          `\r${total}/${N} images over ${JOBS} processes, ${(total / el).toFixed(2)} img/s, ETA ${total ? (((N - total) * el) / total).toFixed(0) : '?'} s   `,
        );
      });
      return new Promise<Part>((res, rej) =>
        child.on('close', (code) => {
          if (code !== 0)
            rej(
              new Error(
                `pi-correctness process for images ${from}..${from + n - 1} exited with ${code}:\n${err.replace(/progress \d+\n/g, '')}`,
              ),
            );
          else res(JSON.parse(out) as Part);
        }),
      );
    }),
  );
  return merge(parts);
}

const fixedFormat = () => ({ ...defaultFixedPoint, ...FIXED });

/** Kept ReLU ops and conv/fc layers of a plan (the cost model's counts). */
const counts = (plan: PublicPlan['ops']) => ({
  reluOps: plan.filter((o) => o.op === 'relu').length,
  layers: plan.filter((o) => o.op === 'conv' || o.op === 'fc').length,
});

/** Mean measured online time (client wall) and the server's ReLU steps online, per image, ms. */
function measured(reps: PiReport[]): { onlineMs: number; reluOnlineMs: number } {
  const n = reps.length;
  return {
    onlineMs: reps.reduce((s, r) => s + r.phases.online.ms, 0) / n,
    reluOnlineMs:
      reps.reduce((s, r) => s + r.ops.filter((o) => o.kind === 'relu').reduce((t, o) => t + o.serverOnlineMs, 0), 0) /
      n,
  };
}

/** The cost model fitted on the --fit models' sessions; its online estimate against the measured time, per model. */
async function costComparison(p: Part) {
  const cm = calibrate(p.fitReports.map((f) => f.report));
  const r = cm.relu[RELU]!.online!;
  const row = async (model: string, reps: PiReport[]) => {
    const sm = serverModelFromDir(model, FIXED);
    const { plan } = sm;
    const c = counts(plan.ops);
    sm.dispose();
    const m = measured(reps);
    const est = estimateOnline(cm, plan.relus, plan.macs, c.layers, RELU) * 1e3;
    const estRelu = plan.relus * r.perRelu_s * 1e3;
    return {
      model,
      images: reps.length,
      relus: plan.relus,
      reluOps: c.reluOps,
      macs: plan.macs,
      measuredOnlineMs: m.onlineMs,
      estimatedOnlineMs: est,
      ratio: m.onlineMs / est,
      measuredReluOnlineMs: m.reluOnlineMs,
      estimatedReluOnlineMs: estRelu,
      reluRatio: m.reluOnlineMs / estRelu,
    };
  };
  return {
    fittedOn: FIT,
    fitEvery: FIT_EVERY,
    online: {
      perReluUs: r.perRelu_s * 1e6,
      perMacNs: cm.online!.perMac_s * 1e9,
      perLayerMs: cm.online!.perLayer_s * 1e3,
    },
    models: [
      ...(a.model ? [await row(a.model, p.reports)] : []),
      ...(await Promise.all(
        FIT.map((f) =>
          row(
            f,
            p.fitReports.filter((x) => x.model === f).map((x) => x.report),
          ),
        ),
      )),
    ],
  };
}

const t0 = Date.now(),
  load0 = loadavg();
let part: Part;
if (a.part) {
  part = await runRange(FROM, N, (d) => process.stderr.write(`progress ${d}\n`));
  process.stdout.write(JSON.stringify(part));
} else {
  part =
    JOBS > 1
      ? await runJobs()
      : await runRange(FROM, N, (d, p) => {
          if (!a.json && (d % 10 === 0 || d === N))
            process.stderr.write(
              `\r${d}/${N} images, max diff ${p.maxUlp} ULPs, top-1 agreement with float ${((100 * p.agreeFloat) / d).toFixed(2)}%   `,
            );
        });
  const res = {
    model: MODEL_NAME,
    dataset: DATASET,
    preprocess: a.preprocess,
    relu: RELU,
    fixed: { f: fixedFormat().f, weightFrac: fixedFormat().weightFrac },
    images: `${FROM}..${FROM + N - 1}`,
    relus: part.relus,
    culledSites: part.culledSites,
    outputScale: part.outputScale,
    maxDiffUlps: Number(part.maxUlp),
    maxDiffLogits: Number(part.maxUlp) / 2 ** part.outputScale,
    top1AgreementFloat: part.agreeFloat / N,
    top1AgreementReference: part.agreeRef / N,
    ...(DATASET !== 'generated' ? { secureAccuracy: part.correct / N } : {}),
    // headroom: largest |x| bits at a ReLU minus the circuit width (must be < -1); largest |x| bits at a local truncation
    reluHeadroomBits: -part.maxReluBits,
    maxCullBits: part.maxCullBits,
    meanOfflineMs: part.offlineMs / N,
    meanOnlineMs: part.onlineMs / N,
    jobs: JOBS,
    wallS: (Date.now() - t0) / 1e3,
    loadAverage: { start: load0.map((v) => Number(v.toFixed(2))), end: loadavg().map((v) => Number(v.toFixed(2))) },
    ...(FIT.length ? { costModel: await costComparison(part) } : {}),
  };
  process.stderr.write('\n');
  process.stdout.write(
    a.json
      ? `${JSON.stringify(res, null, 2)}\n`
      : `${Object.entries(res)
          .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)
          .join('\n')}\n`,
  );
}
