// Learned fine-grained ReLU masks after Selective Network Linearization (SNL: Cho, Joshi, Reagen, Garg, Hegde,
// "Selective Network Linearization for Efficient Private Inference", ICML 2022). Every ReLU element (or channel)
// gets a mask parameter g in [0, 1], y = x + g * (relu(x) - x), trained with the weights under KD plus an L1
// penalty mu * sum(g). SNL raises mu by 1.1x per epoch until the count of g above a threshold fits the budget; here
// mu keeps the L1 mass sum(g) on a target that falls geometrically from all ReLUs to the smallest budget over a
// planned number of steps (and on at that rate until the count gets there): raised while the mass is above the
// target, lowered below it. The count is checked every step so a budget is caught at the step it is reached, and
// each budget's mask is cut by top-k to exactly that many ReLUs.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import {
  SGD,
  keep,
  labels,
  loadSafetensors,
  manualSeed,
  noGrad,
  ones,
  rngState,
  saveSafetensors,
  setNumThreads,
  setRngState,
  tensor,
  tidy,
  zeros,
  type Tensor,
} from '../engine/index.js';
import {
  applyMask,
  fullMask,
  keepsAny,
  keptFlags,
  setSiteElements,
  siteShapes,
  type Network,
  type NetSpec,
  type ReluMask,
} from '../models/index.js';
import { kdLoss } from './kd.js';
import { saveModelDir, type InputTransform } from './modeldir.js';
import { Progress } from './progress.js';
import { evaluate, setLayout, type TrainData } from './trainer.js';
import { writeFileAtomic } from '../util/fs.js';
import { packageVersion } from '../util/version.js';

/** The mask phase of a learned-mask run (a TrainConfig's `learnMask`). */
export interface MaskLearningOptions {
  /** ReLU budgets; each gets an exact mask and a snapshot of the weights (`budget-<B>/`), largest first. */
  budgets: number[];
  /** One mask parameter per activation element, or per channel (broadcast over its positions). */
  granularity: 'element' | 'channel';
  /** Epochs in which the target count falls from all ReLUs to the smallest budget. */
  reachEpochs: number;
  /** The mask phase stops here at the latest; budgets not reached by then are cut by top-k all the same. */
  maxEpochs: number;
  /** Adam learning rate of the mask parameters. */
  maskLr: number;
  /** SGD learning rate (Nesterov momentum 0.9) of the weights while the masks are learned. */
  weightLr: number;
  /** Initial L1 coefficient per ReLU, and the factor it moves by each step. */
  penalty: number;
  penaltyStep: number;
  /** A mask parameter above this counts as a ReLU (SNL: 0.01). */
  threshold: number;
}

export const defaultMaskLearning: Omit<MaskLearningOptions, 'budgets'> = {
  granularity: 'element',
  reachEpochs: 1,
  maxEpochs: 2,
  maskLr: 0.01,
  weightLr: 0.01,
  penalty: 1e-4,
  penaltyStep: 1.02,
  threshold: 0.01,
};

/** One budget's outcome: the exact mask's count, when it was taken, accuracy before fine-tuning. */
export interface MaskSnapshot {
  budget: number;
  relus: number;
  step: number;
  epoch: number;
  /** The thresholded count reached the budget (false: cut by top-k at the end of the mask phase). */
  reached: boolean;
  /** ReLUs above the threshold when the mask was taken (<= budget when reached). */
  thresholdCount: number;
  penalty: number;
  /** Test accuracy of the exact mask with the weights of that step, before fine-tuning. */
  acc: number;
  dir: string;
}

export interface MaskLearningResult {
  steps: number;
  seconds: number;
  snapshots: MaskSnapshot[];
}

/** The target at a step: geometric from `start`, reaching `end` after `steps` and falling on at the same rate. */
export function targetCount(start: number, end: number, step: number, steps: number): number {
  return start * (end / start) ** (step / Math.max(steps, 1));
}

/** Bang-bang control of the L1 coefficient: up while the count is above target, down below it. */
export function nextPenalty(mu: number, count: number, target: number, factor: number): number {
  return Math.min(1e3, Math.max(1e-12, count > target ? mu * factor : mu / factor));
}

/** A learnable site: its mask parameters and how many ReLUs each stands for. */
interface Gate {
  site: string;
  shape: number[];
  g: Tensor;
  perParam: number;
}

/**
 * The exact mask: the `budget` highest-scoring elements over all gated sites (ties to the lower site order and
 * element index), the other sites as in `base`. A channel's score is its parameter, repeated over its positions.
 */
export function topKMask(
  base: ReluMask,
  gates: { site: string; shape: number[]; scores: Float32Array }[],
  budget: number,
): ReluMask {
  const sizes = gates.map((q) => q.shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  const all = new Float32Array(total);
  let off = 0;
  gates.forEach((q, i) => {
    const plane = sizes[i]! / q.scores.length;
    for (let j = 0; j < sizes[i]!; j++) all[off + j] = q.scores[Math.floor(j / plane)]!;
    off += sizes[i]!;
  });
  const k = Math.max(0, Math.min(budget, total));
  const order = new Uint32Array(total).map((_, i) => i).sort((a, b) => all[b]! - all[a]! || a - b);
  const chosen = new Uint8Array(total);
  for (let i = 0; i < k; i++) chosen[order[i]!] = 1;
  let mask = base;
  off = 0;
  gates.forEach((q, i) => {
    const idx: number[] = [];
    for (let j = 0; j < sizes[i]!; j++) if (chosen[off + j]) idx.push(j);
    mask = setSiteElements(mask, q.site, q.shape, Uint32Array.from(idx));
    off += sizes[i]!;
  });
  return mask;
}

/** Adam (Kingma & Ba) for the mask parameters; its moments are checkpointed with them. */
class Adam {
  readonly m: Tensor[];
  readonly v: Tensor[];
  t = 0;
  constructor(
    readonly params: Tensor[],
    readonly lr: number,
    readonly b1 = 0.9,
    readonly b2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.m = params.map((p) => keep(zeros(p.shape)));
    this.v = params.map((p) => keep(zeros(p.shape)));
  }
  step(): void {
    this.t++;
    const c1 = 1 - this.b1 ** this.t,
      c2 = 1 - this.b2 ** this.t;
    noGrad(() =>
      tidy(() => {
        this.params.forEach((p, i) => {
          const g = p.grad;
          if (!g) return;
          this.m[i]!.mul_(this.b1).add_(g, 1 - this.b1);
          this.v[i]!.mul_(this.b2).addcmul_(g, g, 1 - this.b2);
          p.addcdiv_(this.m[i]!, this.v[i]!.div(c2).sqrt().add(this.eps), -this.lr / c1);
          p.copy_(p.clamp(0, 1));
        });
      }),
    );
  }
  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

interface MaskState {
  step: number;
  epoch: number;
  batch: number;
  mu: number;
  adamT: number;
  startCount: number;
  snapshots: MaskSnapshot[];
  seconds: number;
  torch_rng: string;
  version: string;
}

/**
 * The mask phase: learns masks on net (already holding its start weights, e.g. the teacher's) with KD from
 * teacher, writing one model directory per budget under out (`budget-<B>/`: weights of that step, its exact
 * partial mask). Resumes from `out/mask-state/` after a kill. The enabled sites of spec's mask are the learnable ones.
 */
export async function learnMasks(
  net: Network,
  spec: NetSpec,
  data: TrainData,
  teacher: Network,
  o: MaskLearningOptions,
  ctx: {
    out: string;
    input: InputTransform;
    batchSize: number;
    seed: number;
    threads?: number;
    quiet?: boolean;
    kd: { temperature: number; lambda: number };
  },
): Promise<MaskLearningResult> {
  const budgets = [...o.budgets].sort((a, b) => b - a);
  if (!budgets.length || !budgets.every((b) => Number.isInteger(b) && b >= 0))
    throw new Error(`learnMask.budgets must be non-negative integers, got [${o.budgets}]`);
  if (o.granularity !== 'element' && o.granularity !== 'channel')
    throw new Error(`learnMask.granularity must be 'element' or 'channel', got '${String(o.granularity)}'`);
  if (!(o.reachEpochs > 0) || !(o.maxEpochs >= o.reachEpochs))
    throw new Error(`learnMask: need 0 < reachEpochs <= maxEpochs, got ${o.reachEpochs}, ${o.maxEpochs}`);
  if (ctx.threads) setNumThreads(ctx.threads);
  const log = (s: string) => {
    if (!ctx.quiet) process.stderr.write(`${s}\n`);
  };
  const baseMask: ReluMask = spec.mask ?? fullMask(spec);
  const shapes = siteShapes(spec);
  const gates: Gate[] = baseMask.sites
    .filter((s) => keepsAny(baseMask, s))
    .map((site) => {
      const shape = shapes.get(site)!,
        p = baseMask.partial?.[site];
      const [c, h, w] = shape as [number, number, number];
      const pshape = o.granularity === 'element' ? [1, c, h, w] : [1, c, 1, 1];
      // Start at 1 (a ReLU), or at a partial site's own 0/1 mask.
      const init = tidy(() =>
        (p && o.granularity === 'element'
          ? tensor(keptFlags(p), pshape, 'uint8').to('float32')
          : ones(pshape)
        ).contiguous('channels_last'),
      );
      return { site, shape, g: keep(init).setRequiresGrad(true), perParam: o.granularity === 'element' ? 1 : h * w };
    });
  if (!gates.length) throw new Error('learnMask: the start mask keeps no ReLU site');
  const attach = () => applyMask(net, baseMask, new Map(gates.map((q) => [q.site, q.g])));
  attach();
  const layout = 'channels_last';
  setLayout(net, layout);
  setLayout(teacher.eval(), layout);
  const opt = new SGD(net.parameters(), { lr: o.weightLr, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const adam = new Adam(
    gates.map((q) => q.g),
    o.maskLr,
  );
  const stateDir = join(ctx.out, 'mask-state');
  const count = () =>
    noGrad(() => tidy(() => gates.reduce((t, q) => t + q.g.gt(o.threshold).sum().item() * q.perParam, 0)));
  // The L1 mass: what the penalty acts on, so it answers at once (the count lags by the steps a gate takes to fall).
  const mass = () => noGrad(() => tidy(() => gates.reduce((t, q) => t + q.g.sum().item() * q.perParam, 0)));

  let st: MaskState;
  if (existsSync(join(stateDir, 'state.json'))) {
    st = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as MaskState;
    net.loadStateDict(loadSafetensors(join(stateDir, 'model.safetensors')).tensors, {
      source: join(stateDir, 'model.safetensors'),
    });
    tidy(() => opt.loadStateDict(loadSafetensors(join(stateDir, 'optim.safetensors')).tensors));
    const g = loadSafetensors(join(stateDir, 'gates.safetensors')).tensors;
    noGrad(() =>
      tidy(() =>
        gates.forEach((q, i) => {
          for (const [name, t] of [
            [`g.${q.site}`, q.g],
            [`m.${q.site}`, adam.m[i]!],
            [`v.${q.site}`, adam.v[i]!],
          ] as const) {
            const src = g.get(name);
            if (!src || src.shape.join() !== t.shape.join())
              throw new Error(`${join(stateDir, 'gates.safetensors')}: '${name}' is missing or has the wrong shape`);
            t.copy_(src);
          }
        }),
      ),
    );
    adam.t = st.adamT;
    setRngState(Uint8Array.from(Buffer.from(st.torch_rng, 'base64')));
    log(`mask phase: resuming at step ${st.step} (${st.snapshots.length}/${budgets.length} budgets done)`);
  } else {
    manualSeed(ctx.seed);
    st = {
      step: 0,
      epoch: 0,
      batch: 0,
      mu: o.penalty,
      adamT: 0,
      startCount: count(),
      snapshots: [],
      seconds: 0,
      torch_rng: '',
      version: packageVersion(),
    };
  }
  const saveState = () => {
    mkdirSync(stateDir, { recursive: true });
    saveSafetensors(join(stateDir, 'model.safetensors'), net.stateDict());
    saveSafetensors(join(stateDir, 'optim.safetensors'), opt.stateDict());
    const g = new Map<string, Tensor>();
    gates.forEach((q, i) => {
      g.set(`g.${q.site}`, q.g);
      g.set(`m.${q.site}`, adam.m[i]!);
      g.set(`v.${q.site}`, adam.v[i]!);
    });
    saveSafetensors(join(stateDir, 'gates.safetensors'), g);
    writeFileAtomic(
      join(stateDir, 'state.json'),
      JSON.stringify({ ...st, adamT: adam.t, torch_rng: Buffer.from(rngState()).toString('base64') }),
    );
  };

  const stepsPerEpoch = Math.ceil(data.trainSize / ctx.batchSize);
  const reachSteps = Math.round(o.reachEpochs * stepsPerEpoch);
  const maxSteps = Math.round(o.maxEpochs * stepsPerEpoch);
  const smallest = budgets[budgets.length - 1]!;

  const snapshot = async (budget: number, reached: boolean, thresholdCount: number) => {
    const scores = gates.map((q) => ({
      site: q.site,
      shape: q.shape,
      scores: noGrad(() => tidy(() => q.g.contiguous().flatten().toArray() as Float32Array)),
    }));
    const mask = topKMask(baseMask, scores, budget);
    const dir = join(ctx.out, `budget-${budget}`);
    applyMask(net, mask);
    // The BN statistics were gathered under soft gates; the exact mask's are re-estimated (no weight changes).
    await recalibrateBatchNorm(net, data, layout, 32, 1_000_000 + st.snapshots.length);
    const ev = await evaluate(net, data, layout);
    const relus =
      Object.values(mask.partial ?? {}).reduce((t, p) => t + p.elements.length, 0) +
      mask.kept.reduce((t, s) => t + shapes.get(s)!.reduce((a, b) => a * b, 1), 0);
    saveModelDir(dir, net, ctx.input, { test_acc: ev.acc, relus });
    attach();
    const snap: MaskSnapshot = {
      budget,
      relus,
      step: st.step,
      epoch: st.step / stepsPerEpoch,
      reached,
      thresholdCount,
      penalty: st.mu,
      acc: ev.acc,
      dir,
    };
    st.snapshots.push(snap);
    log(
      `mask phase: budget ${budget.toLocaleString('en-US')} ${reached ? 'reached' : 'cut by top-k'} at step ${st.step} (${thresholdCount.toLocaleString('en-US')} above threshold); exact mask ${relus.toLocaleString('en-US')} ReLUs, ${(100 * ev.acc).toFixed(2)}% before fine-tuning`,
    );
    net.train();
  };

  const t0 = Date.now() - st.seconds * 1000;
  try {
    let done = false;
    while (!done && st.snapshots.length < budgets.length && st.step < maxSteps) {
      const epoch = st.epoch;
      net.train();
      const prog = new Progress(
        `mask epoch ${epoch + 1}/${Math.ceil(o.maxEpochs)}`,
        data.trainSize,
        process.stderr,
        ctx.quiet,
      );
      let k = 0;
      let seen = 0;
      for await (const b of data.train(epoch)) {
        seen += b.n;
        if (k++ < st.batch) continue; // resumed: batches before the checkpoint were trained on
        const loss = tidy(() => {
          const x0 = tensor(b.x, b.shape);
          const x = x0.contiguous(layout);
          const y = labels(b.y);
          const logits = net.forward(x);
          const task = kdLoss(
            logits,
            noGrad(() => teacher.forward(x)),
            y,
            ctx.kd,
          );
          const l1 = gates.reduce<Tensor | null>((t, q) => {
            const s = q.g.sum().mul(q.perParam);
            return t ? t.add(s) : s;
          }, null)!;
          const total = task.add(l1.mul(st.mu));
          opt.zeroGrad();
          for (const q of gates) q.g.grad = null;
          total.backward();
          opt.step();
          adam.step();
          return task.item();
        });
        if (!Number.isFinite(loss)) throw new Error(`mask learning diverged at step ${st.step + 1}: loss is ${loss}`);
        st.step++;
        st.batch = k;
        const n = count();
        const m = mass();
        const target = targetCount(st.startCount, smallest, st.step, reachSteps);
        st.mu = nextPenalty(st.mu, m, target, o.penaltyStep);
        prog.update(
          seen,
          `ReLUs ${Math.round(n)} mask mass ${Math.round(m)} (target ${Math.round(target)}) mu ${st.mu.toExponential(2)} loss ${loss.toFixed(3)}`,
        );
        // Every budget the count has reached at this step (never later: a budget is not overshot).
        let took = false;
        while (st.snapshots.length < budgets.length && n <= budgets[st.snapshots.length]!) {
          st.seconds = (Date.now() - t0) / 1000;
          await snapshot(budgets[st.snapshots.length]!, true, n);
          took = true;
        }
        if (took) saveState();
        done = st.snapshots.length === budgets.length || st.step >= maxSteps;
        if (done) break;
        await tick();
      }
      prog.stop();
      if (done) break;
      st.epoch++;
      st.batch = 0;
      st.seconds = (Date.now() - t0) / 1000;
      saveState();
    }
    const n = count();
    while (st.snapshots.length < budgets.length) await snapshot(budgets[st.snapshots.length]!, false, n);
    st.seconds = (Date.now() - t0) / 1000;
    saveState();
    return { steps: st.step, seconds: st.seconds, snapshots: st.snapshots };
  } finally {
    opt.dispose();
    adam.dispose();
  }
}

/** Re-estimates BN running statistics under the current mask: `batches` forward passes in training mode, no gradients. */
async function recalibrateBatchNorm(
  net: Network,
  data: TrainData,
  layout: 'channels_last',
  batches: number,
  epoch: number,
): Promise<void> {
  net.train();
  let k = 0;
  for await (const b of data.train(epoch)) {
    noGrad(() => tidy(() => void net.forward(tensor(b.x, b.shape).contiguous(layout))));
    await tick();
    if (++k >= batches) break;
  }
}
