// The DeepReDuce method end to end: baseline -> criticality -> candidates (cull, thin, reshape) -> KD training
// -> Pareto fronts and report. Every training lives in its own folder under `out` and is skipped once finished,
// so a killed run resumes where it stopped.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  countRelus,
  cullStages,
  fullMask,
  maskToDocument,
  removeSites,
  restrict,
  specFor,
  stageOf,
  thin,
  type NetSpec,
  type ReluMask,
} from '../models/index.js';
import { openData, checkDatasetName, networkClasses, type DatasetName } from '../data/index.js';
import { defaultTrainOptions, type TrainOptions } from '../train/trainer.js';
import type { TrainConfig, TrainSummary } from '../train/run.js';
import { readModelInfo } from '../train/modeldir.js';
import { writeFileAtomic } from '../util/fs.js';
import { packageVersion } from '../util/version.js';
import { criticality, type CriticalityResult } from './criticality.js';
import { estimateLatency, loadCostModel, type CostModel, type LatencyContext } from '../pi/node/costmodel.js';
import { describeLink, parseLink } from '../pi/transport/shaping.js';
import { localRunner, type Job, type JobFailure, type JobRunner } from './jobs.js';
import {
  balancedChoices,
  balancedId,
  balancedSpec,
  defaultMethodOptions,
  METHOD_LABELS,
  snlCost,
  snlFinetuneEpochs,
  snlMaskDir,
  snlMaskJob,
  reshapedMaskName,
  subsetRows,
  type Method,
  type MethodOptions,
} from './methods.js';
import { cheapestAtLeast } from './pareto.js';
import {
  budgetLabel,
  estimateSpec,
  frontOn,
  pickOn,
  OBJECTIVE_LABELS,
  reluBudgetFor,
  type Budget,
  type CostEstimate,
  type Objective,
} from './latency.js';
import { reshapeConfigs, reshapedSpec, reshapeId, searchReshape, type ReshapeRow } from './reshape.js';
import { renderReport } from './report.js';
import { DEFAULT_PI_OPTIONS, measureRunPi, type MeasurePiConfig } from './measurepi.js';
import type { MeasuredPi } from './report-pi.js';
import type { SubsetRow } from './subsets.js';

export interface ReduceConfig {
  arch: string;
  /** Width multiplier of the baseline (candidates scale it further by `alphas`). */
  baseAlpha: number;
  dataset: string;
  dataDir?: string;
  /** The networks' classes (default: the dataset's), e.g. ImageNet's 1000 on a generated subset. */
  numClasses?: number;
  out: string;
  /** Drop candidates with more ReLUs than this. */
  budget?: number;
  /** Drop candidates whose estimate on the objective's time axis (online under 'online', else total) exceeds this. */
  budgetSeconds?: number;
  /** What the front, the main plot and the recommended model minimise: ReLUs, estimated total or online latency. */
  objective?: Objective;
  /** Use an already trained all-ReLU model as the teacher/baseline. */
  teacher?: string;
  /** finetune: epochs for candidates that start from the teacher's weights (default: candidate). */
  epochs: { baseline: number; criticality: number; candidate: number; finetune?: number };
  alphas: number[];
  rhos: number[];
  thinning: boolean[];
  /** Also try fewer blocks (one block fewer per stage, at least one). */
  depth: boolean;
  /** Also try each reshaped network (alpha, rho, depth) with nothing culled or thinned. */
  reshapedFull?: boolean;
  /** Blocks per stage of each depth tried (replaces the default pair; each at most the baseline's). */
  depths?: number[][];
  /** Cull up to this many stages (least critical first). */
  maxCulled: number;
  /** With thinning, also the thinned network with no stage culled (the largest candidates). */
  thinOnly: boolean;
  kd: boolean;
  /** Start shape-compatible candidates from the teacher's weights (fine-tune) unless false. */
  fromTeacher: boolean;
  /** Learning rate for fine-tuning from the teacher's weights. */
  finetuneLr: number;
  /** Also train the smallest candidate without KD (ablation). */
  kdAblation: boolean;
  jobs: number;
  /** Run the trainings on this job queue's workers (redis://HOST:PORT/NAME) instead of locally. */
  queue?: string;
  batchSize: number;
  lr: number;
  seed: number;
  limitTrain?: number;
  limitTest?: number;
  /** Criticality and candidate trainings may use fewer images than the baseline. */
  criticalityLimitTrain?: number;
  candidateLimitTrain?: number;
  /** Images for candidates fine-tuned from the teacher (default: candidateLimitTrain). */
  finetuneLimitTrain?: number;
  costModel?: string;
  /** The latency model's ReLU protocol ('gc', 'ot') and link profile ('lan', 'wan', 'none', 'BANDWIDTH,RTT');
   * default: those of DEFAULT_PI_OPTIONS (the measured runs'), ot over lan. */
  relu?: string;
  link?: string;
  quiet?: boolean;
  /** After the run, measure private inference of the teacher and the front or the recommended model. */
  measurePi?: MeasurePiConfig;
  /** Which methods make candidates (default DeepReDuce only). */
  methods: Method[];
  /** Budgets and options of the budget-driven methods (balanced, subsets, snl). */
  methodOptions: MethodOptions;
}

export const defaultReduceConfig = (
  over: Partial<ReduceConfig> & Pick<ReduceConfig, 'out' | 'dataset'>,
): ReduceConfig => ({
  arch: 'resnet18',
  baseAlpha: 1,
  epochs: { baseline: 5, criticality: 2, candidate: 5 },
  alphas: [1, 0.5],
  rhos: [1, 0.5],
  thinning: [false, true],
  depth: true,
  maxCulled: 2,
  thinOnly: true,
  kd: true,
  fromTeacher: true,
  finetuneLr: 0.02,
  kdAblation: true,
  jobs: 1,
  objective: 'latency',
  batchSize: 128,
  lr: 0.1,
  seed: 0,
  methods: ['deepreduce'],
  methodOptions: defaultMethodOptions(),
  ...over,
});

export interface Candidate {
  id: string;
  /** The network it trains, mask included (learned masks: none; the mask file comes from the mask phase). */
  spec: NetSpec;
  method: Method;
  description: string;
  culled: number[];
  thinned: boolean;
  alpha: number;
  rho: number;
  blocks: number[];
  relus: number;
  macs: number;
  /** See countRelus: 2 per MAC plus bias, residual and ReLU operations. */
  flops: number;
  kd: boolean;
  /** 'teacher': fine-tuned from the teacher's weights; 'sliced': from the teacher's channel-sliced weights (reshaped
   * widths); 'mask': from the weights of a learned mask's step. */
  init: 'teacher' | 'sliced' | 'scratch' | 'mask';
  /** Balanced and reshaped candidates: channels per stage (alpha 1). */
  widths?: number[];
  /** Learned masks: the mask phase's directory of this candidate's mask (default: the teacher-shaped phase's). */
  maskDir?: string;
  /** Learned masks on reshaped widths: their fine-tuning epochs (default: snlFinetuneEpochs of the budget). */
  finetuneEpochs?: number;
  /** Budget-driven candidates: the ReLU budget they were made for (reshaped for a seconds budget: none, the
   * description names it). */
  budget?: number;
  /** Estimated seconds (cost model, the run's ReLU protocol and link): total and online. */
  latency_s: number;
  online_s: number | null;
}

export interface CandidateResult extends Omit<Candidate, 'spec'> {
  acc: number;
  /** Learned masks: accuracy of the exact mask before fine-tuning. */
  maskAcc?: number;
  seconds: number;
  dir: string;
}

export interface ReduceResults {
  version: string;
  config: ReduceConfig;
  costModel: CostModel;
  /** What latency_s assumes: the ReLU protocol and the link. */
  latencyModel: { relu: string; link: string };
  baseline: {
    relus: number;
    macs: number;
    flops: number;
    acc: number;
    latency_s: number;
    online_s: number | null;
    dir: string;
    blocks: number[];
  };
  criticality: CriticalityResult & { linear: { acc: number; dir: string } };
  candidates: CandidateResult[];
  /** Trainings that failed for good, with their errors (their candidates are left out of the fronts). */
  failed: JobFailure[];
  /** The stage-subset search: every subset's best configuration per budget, its score and whether it was trained. */
  subsetSearch: SubsetRow[];
  /** What the front and the recommendation minimise. */
  objective: Objective;
  /** The front on the objective's axis (ids, increasing cost). */
  front: string[];
  /** The fronts on every axis. */
  fronts: { relus: string[]; latency: string[]; online: string[] };
  latencyFront: string[];
  /** The reshape search: per budget, the best configurations (the chosen ones trained). */
  reshapeSearch: ReshapeRow[];
  summary: {
    criticalityOrder: number[];
    paretoPoints: number;
    isoAccuracy: { id: string; relus: number; acc: number; reduction: number } | null;
    /** The cheapest candidate on the objective's axis within the tolerance (measure-pi's, else 1 point) of the
     * baseline, with its estimated speed-ups; null when none is within it. */
    pick: {
      id: string;
      tolerance: number;
      acc: number;
      relus: number;
      latency_s: number;
      online_s: number | null;
      speedup: { relus: number; latency: number; online: number | null };
    } | null;
    kdAblation: { id: string; relus: number; kdAcc: number; noKdAcc: number } | null;
  };
  measuredPi?: MeasuredPi;
}

const stageCount = (spec: NetSpec) => spec.blocks.length;

/** A mask keeping ReLUs only in `stage` (all other sites identities); stage 0 keeps none (all-linear). */
export const onlyStageMask = (spec: NetSpec, stage: number): ReluMask =>
  restrict(fullMask(spec), (s) => stageOf(s) === stage);

/** The DeepReDuce candidate mask: stem ReLU removed, stages culled, optionally thinned (relu1 kept). */
export function candidateMask(spec: NetSpec, culled: number[], thinned: boolean): ReluMask {
  let m = cullStages(removeSites(fullMask(spec), spec.family === 'wrn' ? [] : ['stem.relu']), culled);
  if (thinned) m = thin(m, 'relu1');
  return m;
}

/** spec's ReLUs, MACs and FLOPs, as a candidate states them (estimates: 0 until withEstimates sets them). */
function costOf(spec: NetSpec): Pick<Candidate, 'spec' | 'relus' | 'macs' | 'flops' | 'latency_s' | 'online_s'> {
  const cnt = countRelus(spec);
  return { spec, relus: cnt.total, macs: cnt.macs, flops: cnt.flops, latency_s: 0, online_s: null };
}

/** The DeepReDuce candidate network of spec's shape (its mask ignored): candidateMask applied. */
const drSpec = (spec: NetSpec, culled: number[], thinned: boolean): NetSpec => ({
  ...spec,
  mask: candidateMask({ ...spec, mask: undefined }, culled, thinned),
});

/** Enumerates candidates from the culling order; none keeps fewer than one stage of ReLUs, and none is unreduced. */
export function enumerateCandidates(base: NetSpec, order: number[], c: ReduceConfig): Candidate[] {
  const out: Candidate[] = [];
  const maxCull = Math.min(c.maxCulled, stageCount(base) - 1);
  for (const d of c.depths ?? [])
    if (d.length !== base.blocks.length || d.some((b, i) => b > base.blocks[i]!))
      throw new Error(`--depths: [${d}] must have ${base.blocks.length} stages of at most [${base.blocks}] blocks`);
  const depths = !c.depth
    ? [base.blocks]
    : (c.depths?.map((d) => (d.join() === base.blocks.join() ? base.blocks : d)) ?? [
        base.blocks,
        base.blocks.map((b, i) => (i === 0 ? b : Math.max(1, b - 1))),
      ]);
  const seen = new Set<string>();
  for (let k = 0; k <= maxCull; k++) {
    const culled = order.slice(0, k).sort((a, b) => a - b);
    for (const thinned of c.thinning.filter((t) => k > 0 || (t && c.thinOnly) || !t))
      for (const a of c.alphas)
        for (const rho of c.rhos)
          for (const blocks of depths) {
            // With nothing culled or thinned, only a reshaped network (alpha, rho, depth) reduces anything.
            if (k === 0 && !thinned && (!c.reshapedFull || (a === 1 && rho === 1 && blocks === base.blocks))) continue;
            const key = JSON.stringify([culled, thinned, a, rho, blocks]);
            if (seen.has(key)) continue;
            seen.add(key);
            out.push(drCandidate(base, c, culled, thinned, a, base.rho * rho, 'deepreduce', undefined, blocks));
          }
  }
  return c.budget !== undefined ? out.filter((x) => x.relus <= c.budget!) : out;
}

function trainOptions(c: ReduceConfig, epochs: number, lr = c.lr, kd = false): TrainOptions {
  return {
    ...defaultTrainOptions,
    epochs,
    lr,
    seed: c.seed,
    quiet: true,
    ...(kd ? { kd: { temperature: 4, lambda: 0.9 } } : {}),
  };
}

function jobFor(
  c: ReduceConfig,
  dir: string,
  spec: NetSpec,
  o: TrainOptions,
  extra: Partial<TrainConfig> = {},
  limitTrain = c.limitTrain,
): TrainConfig {
  return {
    arch: spec.arch,
    alpha: spec.alpha,
    rho: spec.rho,
    blocks: spec.blocks,
    ...(spec.mask ? { mask: maskToDocument(spec.mask) } : {}),
    dataset: c.dataset,
    dataDir: c.dataDir,
    ...(c.numClasses !== undefined ? { numClasses: c.numClasses } : {}),
    batchSize: c.batchSize,
    options: o,
    out: dir,
    limitTrain,
    limitTest: c.limitTest,
    ...extra,
  };
}

/**
 * Runs (or resumes) the whole method and writes results.json, results.csv and report.html into c.out. The trainings
 * go to `runner` (with `c.queue`: that queue's, src/queue/runner.ts), or else to local processes.
 */
export async function reduce(
  c: ReduceConfig,
  log: (s: string) => void = (s) => process.stderr.write(`${s}\n`),
  runner?: JobRunner,
): Promise<ReduceResults> {
  if (c.queue && !runner)
    throw new Error(
      `reduce: config.queue is ${c.queue}; pass that queue's JobRunner (queueRunner, src/queue/runner.ts)`,
    );
  const budgetDriven = c.methods.filter((m) => m !== 'deepreduce');
  const budgetSpecs: Budget[] = c.methodOptions.budgetSpecs ?? c.methodOptions.budgets.map((relus) => ({ relus }));
  if (budgetDriven.length && !budgetSpecs.length)
    throw new Error(
      `--method ${budgetDriven.join(',')} needs budgets (--budgets N,N,... in ReLUs or seconds, e.g. 6144,0.5s, or --budget N)`,
    );
  const objective: Objective = c.objective ?? 'latency';
  mkdirSync(c.out, { recursive: true });
  writeFileAtomic(join(c.out, 'reduce.json'), `${JSON.stringify({ ...c, version: packageVersion() }, null, 2)}\n`);
  const costModel = loadCostModel(c.costModel);
  const ctx: LatencyContext = {
    relu: c.relu ?? DEFAULT_PI_OPTIONS.relu!,
    link: parseLink(c.link ?? DEFAULT_PI_OPTIONS.link!),
  };
  estimateLatency(costModel, 0, 0, 0, ctx); // an unknown protocol fails now, not after the trainings
  const dataset: DatasetName = checkDatasetName(c.dataset);
  // Shape the network for the data (classes, channels, padded input size).
  const probe = openData(dataset, {
    dir: c.dataDir,
    batchSize: c.batchSize,
    padTo32: true,
    limitTrain: 1,
    limitTest: 1,
  });
  const shape = {
    numClasses: networkClasses(c.numClasses, probe.numClasses),
    inChannels: probe.shape[0],
    inputSize: probe.shape[1],
  };
  await probe.close();
  const base = specFor(c.arch, { alpha: c.baseAlpha, ...shape });
  if (c.teacher) checkTeacherShape(c.teacher, base);
  const estimate = (spec: NetSpec, relus?: number): CostEstimate => estimateSpec(spec, costModel, ctx, relus);
  // Seconds budgets become ReLU budgets for balancing, the subset search and learned masks: the largest count whose
  // estimate at the teacher's shape (every site an op, as under a learned mask) fits.
  if (budgetSpecs.some((b) => 'seconds' in b)) {
    const needsRelus = c.methods.some((m) => m === 'balanced' || m === 'subsets' || m === 'snl');
    const resolved: number[] = [];
    for (const b of budgetSpecs) {
      if ('relus' in b) {
        resolved.push(b.relus);
        continue;
      }
      const r = reluBudgetFor(b.seconds, { ...base, mask: undefined }, costModel, ctx, objective);
      const floor = estimate({ ...base, mask: undefined }, 1)[objective === 'online' ? 'online_s' : 'latency_s'];
      if (!r && needsRelus && !c.methods.includes('reshape'))
        throw new Error(
          `budget ${budgetLabel(b)}: below the estimate of the teacher-shaped network with one ReLU (${floor?.toFixed(3)} s); learned masks, balancing and the subset search cannot reach it (reshaping can: --method reshape)`,
        );
      if (r && r < countRelus(base).total) {
        resolved.push(r);
        log(`budget ${budgetLabel(b)} -> ${r.toLocaleString('en-US')} ReLUs at the teacher's shape`);
      } else if (needsRelus)
        log(
          `budget ${budgetLabel(b)}: ${r ? 'fits every ReLU' : `below the teacher-shaped network's ${floor?.toFixed(3)} s with one ReLU`} at the teacher's shape; only the reshape search uses it`,
        );
    }
    c = { ...c, methodOptions: { ...c.methodOptions, budgets: [...new Set(resolved)] } };
    writeFileAtomic(join(c.out, 'reduce.json'), `${JSON.stringify({ ...c, version: packageVersion() }, null, 2)}\n`);
  }
  runner ??= localRunner(c.jobs);
  const t0 = Date.now();
  let finished = 0;
  const note = (total: number) => (job: Job, r: TrainSummary) => {
    finished++;
    const el = (Date.now() - t0) / 1000;
    log(
      `  [${finished}/${total}] ${job.id}: ${(100 * r.test_acc).toFixed(2)}% with ${r.relus.toLocaleString('en-US')} ReLUs (${r.seconds.toFixed(0)} s; ${el.toFixed(0)} s elapsed)`,
    );
  };

  // 1. baseline (teacher) and 2. criticality: independent trainings, run together.
  const baseDir = c.teacher ?? join(c.out, 'baseline');
  const step1: Job[] = [];
  if (!c.teacher) step1.push({ id: 'baseline', config: jobFor(c, baseDir, base, trainOptions(c, c.epochs.baseline)) });
  const nStages = stageCount(base);
  for (let k = 0; k <= nStages; k++) {
    const spec = { ...base, mask: onlyStageMask(base, k) };
    const id = k === 0 ? 'linear' : `stage${k}`;
    step1.push({
      id: `criticality/${id}`,
      config: jobFor(
        c,
        join(c.out, 'criticality', id),
        spec,
        trainOptions(c, c.epochs.criticality),
        {},
        c.criticalityLimitTrain ?? c.limitTrain,
      ),
    });
  }
  log(`step 1-2: baseline and criticality (${step1.length} trainings, ${runner.describe})`);
  const { results: r1, failed } = await runner.run(step1, note(step1.length));
  if (failed.length) failStage(c, failed);
  const baseline = c.teacher ? readBaseline(c.teacher) : r1.get('baseline')!;
  const baseCount = countRelus(base);
  const profiles = Array.from({ length: nStages }, (_, i) => ({
    stage: i + 1,
    relus: countRelus({ ...base, mask: onlyStageMask(base, i + 1) }).total,
    acc: r1.get(`criticality/stage${i + 1}`)!.test_acc,
  }));
  // The criticality runs train shorter than the baseline: their own all-ReLU reference is the best stage run or
  // the baseline, whichever is higher, so gains stay within 0..1.
  const linearAcc = r1.get('criticality/linear')!.test_acc;
  const crit = criticality(profiles, linearAcc, Math.max(baseline.test_acc, ...profiles.map((p) => p.acc)));
  log(`criticality order (least critical first): ${crit.order.map((s) => `stage${s}`).join(', ')}`);

  // 3. candidates of every method and 4. KD training.
  const withEstimates = (k: Candidate): Candidate => ({
    ...k,
    ...estimate(k.spec, k.init === 'mask' ? k.relus : undefined),
  });
  const dr = (c.methods.includes('deepreduce') ? enumerateCandidates(base, crit.order, c) : [])
    .map(withEstimates)
    .filter(
      (k) =>
        c.budgetSeconds === undefined ||
        (k[objective === 'online' ? 'online_s' : 'latency_s'] ?? Number.POSITIVE_INFINITY) <= c.budgetSeconds,
    );
  const {
    candidates: more,
    subsetSearch,
    reshapeSearch,
  } = budgetCandidates(base, crit, c, dr, {
    budgets: budgetSpecs,
    objective,
    estimate,
    reluBudget: (seconds, spec) => reluBudgetFor(seconds, spec, costModel, ctx, objective),
  });
  const cands = [...dr, ...more.map(withEstimates)];
  if (!cands.length)
    throw new Error(
      `no candidate fits the budget of ${c.budget !== undefined ? `${c.budget} ReLUs` : ''}${c.budgetSeconds !== undefined ? ` ${c.budgetSeconds} s` : ''}`,
    );
  // 3a. learned masks: one mask phase gives every budget's exact mask, each fine-tuned below as a candidate; with
  // reshaping, one more phase per reshaped width set (its masks from the channel-sliced teacher).
  const snapshots = new Map<string, number>();
  if (c.methods.includes('snl')) {
    const jobs = c.methodOptions.budgets.length
      ? [
          snlMaskJob(
            c.methodOptions,
            jobFor(c, '', { ...base, mask: undefined }, trainOptions(c, 0, c.lr, true)),
            c.out,
            baseDir,
          ),
        ]
      : [];
    const byDir = new Map<string, { spec: NetSpec; budgets: number[] }>();
    for (const k of cands.filter((x) => x.init === 'mask' && x.maskDir)) {
      const d = join(k.maskDir!, '..');
      byDir.set(d, { spec: k.spec, budgets: [...(byDir.get(d)?.budgets ?? []), k.relus] });
    }
    for (const [d, { spec, budgets }] of byDir)
      jobs.push(
        snlMaskJob(
          { ...c.methodOptions, budgets: [...new Set(budgets)].sort((a, b) => b - a) },
          jobFor(c, '', spec, trainOptions(c, 0, c.lr, true), {
            widths: spec.widths,
            stemWidth: spec.stemWidth,
            initSlice: true,
          }),
          c.out,
          baseDir,
          d.split(/[\\/]/).pop()!,
        ),
      );
    log(
      `step 3a: learned masks for ${c.methodOptions.budgets.map((b) => b.toLocaleString('en-US')).join(', ')} ReLUs` +
        (byDir.size ? `, and on ${byDir.size} reshaped width set(s)` : ''),
    );
    finished = 0;
    const o = await runner.run(jobs, note(jobs.length));
    if (o.failed.length) failStage(c, o.failed);
    for (const job of jobs)
      for (const q of o.results.get(job.id)!.snapshots ?? [])
        snapshots.set(join(job.config.out, `budget-${q.budget}`), q.acc);
  }
  const step3: Job[] = cands.map((k) => candidateJob(c, baseDir, k));
  const drSmallest = dr.length ? dr.reduce((a, b) => (b.relus < a.relus ? b : a)) : null;
  let ablation: Candidate | null = null;
  if (c.kd && c.kdAblation && drSmallest) {
    ablation = {
      ...drSmallest,
      id: `${drSmallest.id}-nokd`,
      kd: false,
      description: `${drSmallest.description}, no KD`,
    };
    const j = step3.find((s) => s.id === drSmallest.id)!;
    step3.push({
      id: ablation.id,
      config: {
        ...j.config,
        teacher: undefined,
        out: join(c.out, 'candidates', ablation.id),
        options: trainOptions(c, j.config.options.epochs, j.config.options.lr, false),
      },
    });
  }
  log(
    `step 3-4: ${step3.length} candidates (${c.methods.map((m) => `${cands.filter((k) => k.method === m).length} ${m}`).join(', ')}; ` +
      `${cands.filter((k) => k.init !== 'scratch').length} fine-tuned from the teacher or a learned mask, ${c.kd ? 'with' : 'without'} KD)`,
  );
  finished = 0;
  const o3 = await runner.run(step3, note(step3.length));
  const r3 = o3.results;
  failed.push(...o3.failed);

  // 5. Pareto fronts, over the candidates that trained.
  const all = [...cands, ...(ablation ? [ablation] : [])].filter((k) => r3.has(k.id));
  const results: CandidateResult[] = all.map(({ spec, ...k }) => {
    const r = r3.get(k.id)!;
    const maskAcc = k.init === 'mask' ? snapshots.get(k.maskDir ?? snlMaskDir(c.out, k.budget!)) : undefined;
    return {
      ...k,
      acc: r.test_acc,
      ...(maskAcc !== undefined ? { maskAcc } : {}),
      seconds: r.seconds,
      dir: join(c.out, 'candidates', k.id),
    };
  });
  const kdOnly = results.filter((r) => r.kd === c.kd);
  const fronts = {
    relus: frontOn(kdOnly, 'relus'),
    latency: frontOn(kdOnly, 'latency'),
    online: frontOn(kdOnly, 'online'),
  };
  const front = fronts[objective];
  const baseEst = estimate(base);
  const tolerance = c.measurePi?.tolerance ?? 0.01;
  const picked = pickOn(kdOnly, objective, baseline.test_acc - tolerance);
  const iso = cheapestAtLeast(
    kdOnly.map((r) => ({ id: r.id, cost: r.relus, acc: r.acc })),
    baseline.test_acc - 0.01,
  );
  const abl =
    ablation && drSmallest && r3.has(drSmallest.id) && r3.has(ablation.id)
      ? {
          id: drSmallest.id,
          relus: drSmallest.relus,
          kdAcc: r3.get(drSmallest.id)!.test_acc,
          noKdAcc: r3.get(ablation.id)!.test_acc,
        }
      : null;
  const out: ReduceResults = {
    version: packageVersion(),
    config: c,
    costModel,
    latencyModel: { relu: ctx.relu, link: describeLink(ctx.link) },
    baseline: {
      relus: baseCount.total,
      macs: baseCount.macs,
      flops: baseCount.flops,
      blocks: base.blocks,
      acc: baseline.test_acc,
      ...baseEst,
      dir: baseDir,
    },
    criticality: { ...crit, linear: { acc: linearAcc, dir: join(c.out, 'criticality', 'linear') } },
    candidates: results,
    failed,
    subsetSearch,
    objective,
    front,
    fronts,
    latencyFront: fronts.latency,
    reshapeSearch,
    summary: {
      criticalityOrder: crit.order,
      paretoPoints: front.length,
      pick: picked
        ? {
            id: picked.id,
            tolerance,
            acc: picked.acc,
            relus: picked.relus,
            latency_s: picked.latency_s,
            online_s: picked.online_s,
            speedup: {
              relus: baseCount.total / picked.relus,
              latency: baseEst.latency_s / picked.latency_s,
              online: baseEst.online_s !== null && picked.online_s !== null ? baseEst.online_s / picked.online_s : null,
            },
          }
        : null,
      isoAccuracy: iso ? { id: iso.id, relus: iso.cost, acc: iso.acc, reduction: baseCount.total / iso.cost } : null,
      kdAblation: abl,
    },
  };
  writeResults(c.out, out);
  if (c.measurePi) {
    out.measuredPi = await measureRunPi(out, c.measurePi, log);
    writeResults(c.out, out);
  }
  return out;
}

/** The baseline or a criticality training failed: nothing after it can run. results.json lists the failures. */
function failStage(c: ReduceConfig, failed: JobFailure[]): never {
  writeFileAtomic(
    join(c.out, 'results.json'),
    `${JSON.stringify({ version: packageVersion(), config: c, failed }, null, 2)}\n`,
  );
  const byError = new Map<string, string[]>();
  for (const f of failed) byError.set(f.error, [...(byError.get(f.error) ?? []), f.id]);
  throw new Error(
    `${failed.length} training${failed.length > 1 ? 's' : ''} failed (${join(c.out, 'results.json')}): ` +
      [...byError].map(([e, ids]) => `${ids.join(', ')}: ${e}`).join('; '),
  );
}

/**
 * The DeepReDuce candidate of a (culled, thinned, alpha, rho, blocks) configuration: alpha relative to the baseline's,
 * rho the network's (its id names it relative to the baseline's: r1 keeps an ImageNet layout's stride-2 stem).
 */
function drCandidate(
  base: NetSpec,
  c: ReduceConfig,
  culled: number[],
  thinned: boolean,
  a: number,
  rho: number,
  method: Method,
  budget?: number,
  blocks = base.blocks,
): Candidate {
  const spec = drSpec(
    specFor(base.arch, { ...base, mask: undefined, alpha: base.alpha * a, rho, blocks }),
    culled,
    thinned,
  );
  const sameShape = a === 1 && JSON.stringify(blocks) === JSON.stringify(base.blocks);
  // rho changes no weight's shape; a narrower or shallower network is sliced from the teacher (models/slice.ts).
  const sliceable = a <= 1 && blocks.every((b, i) => b <= base.blocks[i]!);
  return {
    id: `${culled.length ? `cull${culled.join('')}${thinned ? '-thin' : ''}` : thinned ? 'thin' : 'full'}-a${a}-r${rho / base.rho}${blocks === base.blocks ? '' : `-b${blocks.join('')}`}`,
    method,
    culled,
    thinned,
    alpha: base.alpha * a,
    rho,
    blocks,
    ...costOf(spec),
    kd: c.kd,
    init: !c.fromTeacher ? 'scratch' : sameShape ? 'teacher' : sliceable ? 'sliced' : 'scratch',
    description:
      `${culled.length ? `cull stage${culled.length > 1 ? 's' : ''} ${culled.join(',')}` : 'no stage culled'}${thinned ? ', thinned' : ''}, alpha x${a}, rho ${rho}` +
      (blocks === base.blocks ? '' : `, blocks ${blocks.join(',')}`) +
      (budget !== undefined ? `; subset search for ${budget.toLocaleString('en-US')}` : ''),
    ...(budget !== undefined ? { budget } : {}),
  };
}

/** What the reshape search needs: the budgets as given (ReLUs or seconds), the objective and the estimate. */
export interface ReshapeContext {
  budgets: Budget[];
  objective: Objective;
  estimate: (spec: NetSpec, relus?: number) => CostEstimate;
  /** The largest ReLU count of a learned mask on spec's network within a seconds budget (0: none). */
  reluBudget: (seconds: number, spec: NetSpec) => number;
}

/**
 * Candidates of the budget-driven methods (balanced widths, subset search, learned masks, reshaped widths), the
 * subset table and the reshape table.
 */
export function budgetCandidates(
  base: NetSpec,
  crit: CriticalityResult,
  c: ReduceConfig,
  existing: Candidate[],
  rc?: ReshapeContext,
): { candidates: Candidate[]; subsetSearch: SubsetRow[]; reshapeSearch: ReshapeRow[] } {
  const o = c.methodOptions;
  const out: Candidate[] = [];
  const ids = new Set(existing.map((k) => k.id));
  if (c.methods.includes('balanced')) {
    for (const b of balancedChoices(base, crit.order, o)) {
      out.push({
        id: balancedId(b),
        method: 'balanced',
        culled: b.culled,
        thinned: b.thinned,
        alpha: 1,
        rho: b.rho,
        blocks: base.blocks,
        ...costOf(drSpec(balancedSpec(base, b.widths, b.rho), b.culled, b.thinned)),
        kd: c.kd,
        init: 'scratch',
        widths: b.widths,
        budget: b.budget,
        description: `ReLU-balanced widths ${b.widths.join(',')} for ${b.budget.toLocaleString('en-US')}${b.culled.length ? `, cull stage${b.culled.length > 1 ? 's' : ''} ${b.culled.join(',')}` : ''}${b.thinned ? ', thinned' : ''}, rho ${b.rho}`,
      });
    }
  }
  let subsetSearch: SubsetRow[] = [];
  if (c.methods.includes('subsets')) {
    subsetSearch = subsetRows(
      base,
      crit,
      { ...o, thinning: c.thinning, alphas: c.alphas, rhos: c.rhos },
      (spec, culled, thinned) => candidateMask(spec, culled, thinned),
    );
    for (const row of subsetSearch.filter((r) => r.chosen)) {
      const k = drCandidate(base, c, row.culled, row.thinned, row.alpha, row.rho, 'subsets', row.budget);
      if (ids.has(k.id)) continue; // already trained as a DeepReDuce (or another budget's) candidate
      ids.add(k.id);
      out.push(k);
    }
  }
  if (c.methods.includes('snl')) {
    for (const budget of o.budgets) {
      const cost = snlCost(base, budget);
      out.push({
        id: `snl-${budget}`,
        spec: { ...base, mask: undefined },
        method: 'snl',
        culled: [],
        thinned: false,
        alpha: base.alpha,
        rho: base.rho,
        blocks: base.blocks,
        relus: budget,
        ...cost,
        latency_s: 0,
        online_s: null,
        kd: c.kd,
        init: 'mask',
        budget,
        description: `learned ${o.snl.granularity} masks (SNL) for exactly ${budget.toLocaleString('en-US')} ReLUs, fine-tuned ${snlFinetuneEpochs(o, budget)} epochs`,
      });
    }
  }
  let reshapeSearch: ReshapeRow[] = [];
  if (c.methods.includes('reshape')) {
    if (!rc) throw new Error('budgetCandidates: reshaping needs the budgets, the objective and the estimate');
    const configs = reshapeConfigs(base, crit, o.reshape, drSpec, (spec) => ({
      ...costOf(spec),
      ...rc.estimate(spec),
    }));
    const s = searchReshape(configs, rc.budgets, o.reshape, rc.objective);
    reshapeSearch = s.rows;
    for (const x of s.chosen) {
      const id = reshapeId(x);
      if (ids.has(id)) continue;
      ids.add(id);
      const row = s.rows.find((r) => r.rank <= o.reshape.top && reshapeId(r) === id)!;
      out.push({
        id,
        method: 'reshape',
        culled: x.culled,
        thinned: x.thinned,
        alpha: 1,
        rho: base.rho,
        blocks: base.blocks,
        ...costOf(x.spec),
        kd: c.kd,
        init: c.fromTeacher ? 'sliced' : 'scratch',
        widths: x.channels,
        ...(row.reluBudget !== undefined ? { budget: row.reluBudget } : {}),
        description: `reshaped widths ${x.channels.join(',')} (x${x.factors.map((f) => +f.toFixed(3)).join(',')} of the teacher's)${x.culled.length ? `, cull stage${x.culled.length > 1 ? 's' : ''} ${x.culled.join(',')}` : ''}${x.thinned ? ', thinned' : ''}; for ${row.budget}`,
      });
    }
  }
  // reshape and snl together: learned masks on each budget's chosen widths (nothing culled: the mask decides)
  if (rc && c.methods.includes('reshape') && c.methods.includes('snl')) {
    const e = o.snl.finetuneEpochs;
    rc.budgets.forEach((b, i) => {
      const row = reshapeSearch.find((r) => r.rank === 1 && r.budget === budgetLabel(b));
      if (!row) return;
      const spec = reshapedSpec(base, row.channels);
      const all = countRelus(spec);
      const relus = 'relus' in b ? b.relus : rc.reluBudget(b.seconds, spec);
      if (relus < 1 || relus >= all.total) return;
      const id = `snl-${relus}-w${row.channels.join('x')}`;
      if (ids.has(id)) return;
      ids.add(id);
      const epochs = typeof e === 'number' ? e : (e[i] ?? e[e.length - 1]!);
      out.push({
        id,
        spec,
        method: 'snl',
        culled: [],
        thinned: false,
        alpha: 1,
        rho: base.rho,
        blocks: base.blocks,
        relus,
        macs: all.macs,
        flops: all.flops - all.total + relus,
        latency_s: 0,
        online_s: null,
        kd: c.kd,
        init: 'mask',
        widths: row.channels,
        maskDir: join(c.out, 'snl', reshapedMaskName(row.channels), `budget-${relus}`),
        finetuneEpochs: epochs,
        ...('relus' in b ? { budget: b.relus } : {}),
        description: `learned ${o.snl.granularity} masks (SNL) for exactly ${relus.toLocaleString('en-US')} ReLUs on reshaped widths ${row.channels.join(',')} (channel-sliced from the teacher), for ${row.budget}, fine-tuned ${epochs} epochs`,
      });
    });
  }
  return { candidates: out, subsetSearch, reshapeSearch };
}

/** The training of a candidate of any method, as a job. */
function candidateJob(c: ReduceConfig, baseDir: string, k: Candidate): Job {
  const out = join(c.out, 'candidates', k.id);
  const teacher = k.kd ? { teacher: baseDir } : {};
  if (k.init === 'mask') {
    const dir = k.maskDir ?? snlMaskDir(c.out, k.budget!);
    const o = trainOptions(c, k.finetuneEpochs ?? snlFinetuneEpochs(c.methodOptions, k.budget!), c.finetuneLr, k.kd);
    return {
      id: k.id,
      config: {
        ...jobFor(
          c,
          out,
          k.spec,
          o,
          {
            ...teacher,
            init: dir,
            maskFile: join(dir, 'mask.json'),
            ...(k.widths ? { widths: k.spec.widths, stemWidth: k.spec.stemWidth } : {}),
          },
          c.finetuneLimitTrain ?? c.candidateLimitTrain ?? c.limitTrain,
        ),
      },
    };
  }
  const spec = k.spec;
  const fromTeacher = k.init === 'teacher' || k.init === 'sliced';
  const o = trainOptions(
    c,
    fromTeacher ? (c.epochs.finetune ?? c.epochs.candidate) : c.epochs.candidate,
    fromTeacher ? c.finetuneLr : c.lr,
    k.kd,
  );
  return {
    id: k.id,
    config: jobFor(
      c,
      out,
      spec,
      o,
      {
        ...teacher,
        ...(fromTeacher ? { init: baseDir } : {}),
        ...(k.init === 'sliced' ? { initSlice: true } : {}),
        ...(k.widths ? { widths: spec.widths, stemWidth: spec.stemWidth } : {}),
      },
      (fromTeacher ? c.finetuneLimitTrain : undefined) ?? c.candidateLimitTrain ?? c.limitTrain,
    ),
  };
}

/** Throws, naming both, unless the teacher's network has the baseline's shape (candidates are sliced from it). */
export function checkTeacherShape(dir: string, base: NetSpec): void {
  const t = readModelInfo(dir).spec as Partial<NetSpec>;
  const keys = ['arch', 'alpha', 'rho', 'blocks', 'widths', 'numClasses', 'inChannels', 'inputSize'] as const;
  const bad = keys.filter((k) => t[k] !== undefined && JSON.stringify(t[k]) !== JSON.stringify(base[k]));
  if (bad.length)
    throw new Error(
      `--teacher ${dir}: its network differs from the baseline in ${bad.map((k) => `${k} (${JSON.stringify(t[k])}, not ${JSON.stringify(base[k])})`).join(', ')}; give --arch/--alpha to match, or leave them out to take the teacher's`,
    );
}

function readBaseline(dir: string): TrainSummary {
  const f = join(dir, 'result.json');
  if (existsSync(f)) return JSON.parse(readFileSync(f, 'utf8')) as TrainSummary;
  const m = join(dir, 'model.json');
  if (!existsSync(m)) throw new Error(`--teacher ${dir}: not a trained model directory (model.json missing)`);
  const info = JSON.parse(readFileSync(m, 'utf8')) as { metrics?: { test_acc?: number; relus?: number } };
  if (typeof info.metrics?.test_acc !== 'number')
    throw new Error(`--teacher ${dir}: model.json has no metrics.test_acc`);
  return {
    out: dir,
    arch: '',
    relus: info.metrics.relus ?? 0,
    test_acc: info.metrics.test_acc,
    epochs: [],
    seconds: 0,
    kd: false,
  };
}

/** A candidate's cost on an axis, in words. */
export const fmtCost = (c: { relus: number; latency_s: number; online_s: number | null }, o: Objective): string =>
  o === 'relus'
    ? `${c.relus.toLocaleString('en-US')} ReLUs`
    : `${(o === 'latency' ? c.latency_s : (c.online_s ?? Number.NaN)).toFixed(3)} s`;

export function summaryLines(r: ReduceResults): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const lines = [
    `baseline (all ReLUs): ${r.baseline.relus.toLocaleString('en-US')} ReLUs, ${pct(r.baseline.acc)}`,
    `criticality order (least critical first): ${r.summary.criticalityOrder.map((s) => `stage ${s}`).join(', ')} ` +
      `(${r.criticality.stages.map((s) => `stage ${s.stage}: ${pct(s.acc)}, score ${s.score.toFixed(3)}`).join('; ')}; all-linear ${pct(r.criticality.linear.acc)})`,
    `Pareto front (${OBJECTIVE_LABELS[r.objective]}, accuracy; --objective ${r.objective}): ${r.summary.paretoPoints} points: ` +
      r.front
        .map((id) => r.candidates.find((c) => c.id === id)!)
        .map((c) => `${fmtCost(c, r.objective)} @ ${pct(c.acc)} (${c.id}, ${c.method})`)
        .join(', '),
  ];
  // one line per method when the run has several
  for (const m of r.config.methods.length > 1 ? r.config.methods : []) {
    const pts = r.candidates.filter((c) => c.method === m && c.kd === r.config.kd).sort((a, b) => a.relus - b.relus);
    lines.push(
      `${METHOD_LABELS[m]}: ${pts.length ? pts.map((c) => `${c.relus.toLocaleString('en-US')} @ ${pct(c.acc)}${c.maskAcc !== undefined ? ` (${pct(c.maskAcc)} before fine-tuning)` : ''}`).join(', ') : 'no candidate'}`,
    );
  }
  const iso = r.summary.isoAccuracy;
  lines.push(
    iso
      ? `ReLU reduction at <= 1 point accuracy loss: ${iso.reduction.toFixed(2)}x (${iso.id}: ${iso.relus.toLocaleString('en-US')} ReLUs, ${pct(iso.acc)} vs ${pct(r.baseline.acc)})`
      : 'no candidate stays within 1 point of the baseline',
  );
  lines.push(
    `estimated latency (latency_s, online_s): ReLU protocol ${r.latencyModel.relu}, link ${r.latencyModel.link}; baseline ${r.baseline.latency_s.toFixed(3)} s total, ${r.baseline.online_s?.toFixed(3) ?? '-'} s online`,
  );
  const p = r.summary.pick;
  lines.push(
    p
      ? `recommended (cheapest on ${r.objective} within ${(100 * p.tolerance).toFixed(1)} points): ${p.id}, ${pct(p.acc)}, ${p.relus.toLocaleString('en-US')} ReLUs (${p.speedup.relus.toFixed(2)}x fewer), estimated ${p.latency_s.toFixed(3)} s total (${p.speedup.latency.toFixed(2)}x faster), ${p.online_s?.toFixed(3) ?? '-'} s online (${p.speedup.online?.toFixed(2) ?? '-'}x)`
      : `no candidate is within ${(100 * (r.config.measurePi?.tolerance ?? 0.01)).toFixed(1)} points of the baseline: nothing recommended`,
  );
  const k = r.summary.kdAblation;
  if (k)
    lines.push(
      `KD vs no KD at the smallest budget (${k.id}, ${k.relus.toLocaleString('en-US')} ReLUs): ${pct(k.kdAcc)} vs ${pct(k.noKdAcc)} (${k.kdAcc >= k.noKdAcc ? '+' : ''}${(100 * (k.kdAcc - k.noKdAcc)).toFixed(2)} points)`,
    );
  for (const f of r.failed)
    lines.push(`FAILED ${f.id} (${f.attempts} attempt${f.attempts > 1 ? 's' : ''}): ${f.error}`);
  return lines;
}

/** Writes results.json, results.csv and report.html. */
export function writeResults(dir: string, r: ReduceResults): void {
  writeFileAtomic(join(dir, 'results.json'), `${JSON.stringify(r, null, 2)}\n`);
  const head =
    'id,description,relus,macs,alpha,rho,blocks,culled,thinned,kd,init,acc,latency_s,on_front,seconds,method,flops,budget,widths,mask_acc,online_s';
  const front = new Set(r.front);
  const rows = r.candidates.map((c) =>
    [
      c.id,
      `"${c.description}"`,
      c.relus,
      c.macs,
      c.alpha,
      c.rho,
      `"${c.blocks.join(',')}"`,
      `"${c.culled.join(',')}"`,
      c.thinned,
      c.kd,
      c.init,
      c.acc.toFixed(6),
      c.latency_s.toFixed(6),
      front.has(c.id),
      c.seconds.toFixed(1),
      c.method,
      c.flops,
      c.budget ?? '',
      `"${c.widths?.join(',') ?? ''}"`,
      c.maskAcc?.toFixed(6) ?? '',
      c.online_s?.toFixed(6) ?? '',
    ].join(','),
  );
  const b = r.baseline;
  writeFileAtomic(
    join(dir, 'results.csv'),
    `${[head, `baseline,"all ReLUs",${b.relus},${b.macs},${r.config.baseAlpha},1,,,false,false,scratch,${b.acc.toFixed(6)},${b.latency_s.toFixed(6)},false,,baseline,${b.flops},,"",,${b.online_s?.toFixed(6) ?? ''}`, ...rows].join('\n')}\n`,
  );
  writeFileAtomic(
    join(dir, 'report.html'),
    renderReport({
      title: `DeepReDuce: ${r.config.arch} (alpha ${r.config.baseAlpha}) on ${r.config.dataset}`,
      config: r.config as unknown as Record<string, unknown>,
      baseline: r.baseline,
      criticality: r.criticality,
      candidates: r.candidates.map((c) => ({
        id: c.id,
        relus: c.relus,
        acc: c.acc,
        latency_s: c.latency_s,
        online_s: c.online_s,
        kd: c.kd,
        description: c.description,
        method: c.method,
        macs: c.macs,
        flops: c.flops,
        ...(c.maskAcc !== undefined ? { maskAcc: c.maskAcc } : {}),
      })),
      summary: summaryLines(r),
      measuredPi: r.measuredPi,
      subsetSearch: r.subsetSearch.map((row) => {
        const t = r.candidates.find(
          (c) =>
            (c.method === 'deepreduce' || c.method === 'subsets') &&
            c.kd === r.config.kd &&
            c.culled.join() === row.culled.join() &&
            c.thinned === row.thinned &&
            c.alpha === r.config.baseAlpha * row.alpha &&
            c.rho === row.rho &&
            c.blocks.join() === r.baseline.blocks.join(),
        );
        return t ? { ...row, trained: { id: t.id, acc: t.acc } } : row;
      }),
      objective: r.objective,
      reshapeSearch: r.reshapeSearch,
      latencyModel: `ReLU protocol ${r.latencyModel.relu}, link ${r.latencyModel.link}, cost model ${r.costModel.source}`,
    }),
  );
}
