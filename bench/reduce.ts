// The reduction benchmark: ResNet18 (alpha 0.25) on Fashion-MNIST, every method in one run and one report:
// DeepReDuce (criticality-ordered culling, thinning, rho), CryptoNAS ReLU balancing, the stage-subset search and
// learned fine-grained masks (SNL) at the target budgets. Prints the time plan (in epochs of 60,000 images), the
// criticality order, the front and how each target is met.
// Usage: node dist/bench/reduce.js [--out runs/bench-reduce] [--jobs 1] [--epochs 5,2,3,3] [--budgets 6144,12288,28672]
//     [--snl-finetune-epochs 1,3,6 (one, or one per budget)] [--snl-reach-epochs 1] [--teacher DIR] [--cost-model FILE] [--no-torch] [--plan]
//     [--queue redis://HOST:PORT/NAME: the trainings on that queue's workers (bench/queue.js runs both ways)]
//     [--limit-test N, --baseline-limit-train N: fewer images, for a quick check]
// --epochs: baseline, criticality, candidates from scratch, candidates fine-tuned from the teacher.
// --plan: print the time plan and stop.
import './lib/help.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { saveSafetensors, tensor } from '../src/engine/index.js';
import { loadDataset, makeBatch } from '../src/data/index.js';
import { defaultReduceConfig, reduce, summaryLines, type ReduceResults } from '../src/reduce/pipeline.js';
import { queueRunner } from '../src/queue/runner.js';
import {
  balancedSpec,
  defaultMethodOptions,
  METHODS,
  snlFinetuneEpochs,
  snlFinetuneOption,
} from '../src/reduce/methods.js';
import { balancedWidths } from '../src/reduce/balance.js';
import { countRelus, specFor, type NetSpec } from '../src/models/index.js';
import { defaultMaskLearning } from '../src/train/snl.js';
import { bestWithin } from '../src/reduce/pareto.js';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/bench-reduce' },
    jobs: { type: 'string', default: '1' },
    'limit-train': { type: 'string', default: '30000' },
    'criticality-limit-train': { type: 'string', default: '15000' },
    'finetune-limit-train': { type: 'string', default: '60000' },
    epochs: { type: 'string', default: '5,2,3,3' },
    budgets: { type: 'string', default: '6144,12288,28672' },
    'snl-finetune-epochs': { type: 'string', default: '1,3,6' },
    'snl-reach-epochs': { type: 'string', default: String(defaultMaskLearning.reachEpochs) },
    teacher: { type: 'string' },
    'cost-model': { type: 'string' },
    queue: { type: 'string' },
    'limit-test': { type: 'string' },
    'baseline-limit-train': { type: 'string' },
    'no-torch': { type: 'boolean', default: false },
    plan: { type: 'boolean', default: false },
  },
});
const [baseline, criticality, candidate, finetune] = a.epochs!.split(',').map(Number) as [
  number,
  number,
  number,
  number | undefined,
];
const budgets = a.budgets!.split(',').map(Number);
const snlFinetune = snlFinetuneOption(a['snl-finetune-epochs']!.split(',').map(Number), budgets);
const reach = Number(a['snl-reach-epochs']);
const lim = {
  crit: Number(a['criticality-limit-train']),
  cand: Number(a['limit-train']),
  ft: Number(a['finetune-limit-train']),
};
const config = defaultReduceConfig({
  arch: 'resnet18',
  baseAlpha: 0.25,
  dataset: 'fashion-mnist',
  out: a.out!,
  ...(a.teacher ? { teacher: a.teacher } : {}),
  // The baseline (teacher) and the candidates fine-tuned from it train on all 60,000 images; candidates from scratch
  // on a subset, criticality on a smaller one.
  epochs: { baseline, criticality, candidate, ...(finetune !== undefined ? { finetune } : {}) },
  criticalityLimitTrain: lim.crit,
  candidateLimitTrain: lim.cand,
  finetuneLimitTrain: lim.ft,
  alphas: [1],
  rhos: [1, 0.5],
  thinning: [false, true],
  thinOnly: false,
  depth: false,
  maxCulled: 2,
  jobs: Number(a.jobs),
  ...(a['cost-model'] ? { costModel: a['cost-model'] } : {}),
  ...(a.queue ? { queue: a.queue } : {}),
  ...(a['limit-test'] ? { limitTest: Number(a['limit-test']) } : {}),
  ...(a['baseline-limit-train'] ? { limitTrain: Number(a['baseline-limit-train']) } : {}),
  // the ReLU-budget methods its time plan covers (reshaping, issue 27, is run by `reduce --method reshape`)
  methods: METHODS.filter((m) => m !== 'reshape'),
  methodOptions: defaultMethodOptions({
    budgets,
    balanceCulls: [1],
    balanceThinning: [true],
    balanceRhos: [1],
    subsetTop: 1,
    snl: { ...defaultMaskLearning, reachEpochs: reach, maxEpochs: reach * 2, finetuneEpochs: snlFinetune },
  }),
});

// The time plan, in epochs of 60,000 full-resolution images of the baseline network (E; ~90-100 s at 2 threads on an
// idle machine). A step costs about the network's MACs relative to the baseline's; KD adds the teacher's forward
// pass (~1/3 of a training step); a learned mask's gates add ~20% in the mask phase, ~10% when fine-tuning.
const kd = 1 / 3;
const base = specFor('resnet18', { alpha: 0.25, numClasses: 10, inChannels: 1, inputSize: 32 });
const baseMacs = countRelus(base).macs;
const rel = (spec: NetSpec) => countRelus(spec).macs / baseMacs;
const E = (epochs: number, images: number, cost = 1) => (epochs * images * cost) / 60000;
const half = rel(specFor('resnet18', { ...base, rho: 0.5 }));
// the balanced widths if stage 1 is the least critical (the order is known only after the criticality runs)
const bal = budgets
  .map((b) => balancedWidths(base, [1], true, 1, b))
  .filter((w): w is number[] => !!w)
  .map((w) => rel(balancedSpec(base, w, 1)));
const ft = finetune ?? candidate;
const snlEpochs = budgets.map((b) => snlFinetuneEpochs(config.methodOptions, b));
const plan: [string, number][] = [
  ['baseline (teacher)', a.teacher ? 0 : E(baseline, 60000)],
  ['criticality (4 stages + all-linear)', 5 * E(criticality, lim.crit)],
  ['DeepReDuce: 4 at rho 1, fine-tuned from the teacher', 4 * E(ft, lim.ft, 1 + kd)],
  [
    'DeepReDuce: 4 at rho 0.5 from scratch, + no-KD ablation',
    4 * E(candidate, lim.cand, half + kd) + E(candidate, lim.cand, half),
  ],
  [
    `CryptoNAS-balanced: ${bal.length} from scratch (MACs x${bal.map((x) => x.toFixed(2)).join(', x')})`,
    bal.reduce((t, x) => t + E(candidate, lim.cand, x + kd), 0),
  ],
  ['subset search: at most one new per budget (rho 1 bound)', budgets.length * E(ft, lim.ft, 1 + kd)],
  // the mask phase ends when the smallest budget is reached (~reach epochs), at the latest after maxEpochs
  [
    `learned masks: mask phase (${reach} to ${config.methodOptions.snl.maxEpochs} epochs)`,
    E(config.methodOptions.snl.maxEpochs, 60000, 1.2 + kd),
  ],
  [
    `learned masks: ${budgets.length} KD fine-tunes (${snlEpochs.join(', ')} epochs)`,
    E(
      snlEpochs.reduce((x, y) => x + y, 0),
      lim.ft,
      1.1 + kd,
    ),
  ],
];
const total = plan.reduce((t, [, e]) => t + e, 0);
console.log(
  'time plan (E = one epoch of 60,000 images of the baseline, ~95 s at 2 threads on an idle machine; upper bounds):',
);
for (const [what, e] of plan) console.log(`  ${what.padEnd(72)} ${e.toFixed(1).padStart(5)} E`);
console.log(
  `  ${'total (+5% for the test-set evaluations)'.padEnd(72)} ${total.toFixed(1).padStart(5)} E = ~${((total * 1.05 * 95) / 60).toFixed(0)} min`,
);
if (a.plan) process.exit(0);

const t0 = Date.now();
const log = (s: string) => console.log(s);
const r = await reduce(
  config,
  log,
  config.queue ? queueRunner(config.queue, config.out, { quiet: config.quiet, log }) : undefined,
);
console.log('');
for (const l of summaryLines(r)) console.log(l);
targets(r);
if (!a['no-torch']) torchCheck(r);
console.log(`total ${((Date.now() - t0) / 60000).toFixed(1)} min -> ${a.out}/report.html`);

/** The targets for the front: the best accuracy within each budget, over every method. */
function targets(r: ReduceResults): void {
  const pts = r.candidates
    .filter((c) => c.kd === r.config.kd)
    .map((c) => ({ id: c.id, cost: c.relus, acc: c.acc, method: c.method }));
  for (const [budget, want] of [
    [6200, 0.88],
    [12300, 0.905],
    [28700, 0.918],
  ] as const) {
    const b = bestWithin(pts, budget);
    console.log(
      `target >= ${(want * 100).toFixed(1)}% at <= ${budget.toLocaleString('en-US')} ReLUs: ` +
        (b
          ? `${(b.acc * 100).toFixed(2)}% (${b.id}, ${b.method}, ${b.cost.toLocaleString('en-US')} ReLUs) ${b.acc >= want ? 'met' : 'MISSED'}`
          : 'no candidate'),
    );
  }
}

/** The learned-mask models in PyTorch (safetensors + mask.json) on the whole test set: their accuracy beside ours. */
function torchCheck(r: ReduceResults): void {
  const py = '/usr/bin/python3';
  const script = fileURLToPath(new URL('../../test/export/torch_models.py', import.meta.url));
  const snl = r.candidates.filter((c) => c.method === 'snl');
  if (!snl.length) return;
  const dir = join(r.config.out, 'torch-check');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'inputs'), { recursive: true });
  const te = loadDataset('fashion-mnist', 'test');
  const idx = Array.from({ length: te.n }, (_, i) => i);
  const { x, y } = makeBatch(te, idx, { padTo: 32, mean: te.mean, std: te.std }, 0);
  for (const c of snl)
    saveSafetensors(join(dir, 'inputs', `${c.id}.safetensors`), {
      x: tensor(x, [te.n, 1, 32, 32]),
      y: tensor(Int32Array.from(y), [te.n]),
    });
  const links = snl.map((c) => join(dir, c.id));
  for (const [i, c] of snl.entries()) symlinkSync(join('..', 'candidates', c.id), links[i]!);
  const p = spawnSync(py, [script, join(dir, 'inputs'), ...links], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (p.status !== 0) {
    console.log(
      `PyTorch check skipped: ${py} ${script} failed (${(p.stderr || p.error?.message || '').trim().split('\n').at(-1)})`,
    );
    return;
  }
  const got = JSON.parse(p.stdout) as { torch: string; models: Record<string, { acc: number }> };
  for (const c of snl)
    console.log(
      `PyTorch ${got.torch} (model.safetensors + mask.json) ${c.id}: ${(100 * got.models[c.id]!.acc).toFixed(2)}% vs ours ${(100 * c.acc).toFixed(2)}%`,
    );
}
