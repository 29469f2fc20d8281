// The reduction methods besides DeepReDuce's criticality-ordered culling, as candidates and trainings of one
// `deepreduce reduce` run: CryptoNAS ReLU balancing, the stage-subset search, and learned fine-grained masks (SNL).
// Every training is a TrainConfig that the job runner executes.
import { join } from 'node:path';
import { countRelus, scaleWidth, specFor, type NetSpec } from '../models/index.js';
import type { TrainConfig } from '../train/run.js';
import { balancedWidths } from './balance.js';
import type { CriticalityResult } from './criticality.js';
import { defaultMaskLearning, type MaskLearningOptions } from '../train/snl.js';
import type { Budget } from './latency.js';
import { defaultReshapeOptions, type ReshapeOptions } from './reshape.js';
import { searchSubsets, subsetConfigs, type SubsetRow } from './subsets.js';

export const METHODS = ['deepreduce', 'balanced', 'subsets', 'snl', 'reshape'] as const;
export type Method = (typeof METHODS)[number];

export const METHOD_LABELS: Record<Method, string> = {
  deepreduce: 'DeepReDuce (criticality order)',
  balanced: 'CryptoNAS-balanced widths',
  subsets: 'stage-subset search',
  snl: 'learned masks (SNL)',
  reshape: 'reshaped widths (DeepReShape-style)',
};

/** `deepreduce,snl` or `all`; unknown names throw with the valid ones. */
export function parseMethods(list: string): Method[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'all') return [...METHODS];
  const bad = names.filter((n) => !(METHODS as readonly string[]).includes(n));
  if (bad.length || !names.length)
    throw new Error(`--method: unknown method(s) ${bad.join(', ') || '(none)'}; valid: ${METHODS.join(', ')}, all`);
  return [...new Set(names)] as Method[];
}

/** What a budget-driven method needs besides the DeepReDuce options. */
export interface MethodOptions {
  /** ReLU budgets for balancing, the subset search and learned masks (seconds budgets resolved to ReLUs by reduce). */
  budgets: number[];
  /** The budgets as given, in order: ReLU counts or seconds (`--budgets 6144,0.5s`); default: `budgets` as ReLUs. */
  budgetSpecs?: Budget[];
  /** Per-stage ReLU ratio for balancing (default equal). */
  balanceRatio?: number[];
  /** Balanced candidates: culled-stage counts (from the criticality order) and thinning / rho options. */
  balanceCulls: number[];
  balanceThinning: boolean[];
  balanceRhos: number[];
  /** Subset search: how many subsets per budget are trained. */
  subsetTop: number;
  /** Learned masks: the mask phase (budgets come from `budgets`) and the fine-tuning epochs after it: one number for
   * every budget, or one per budget in the order of `budgets` (a larger budget has more to recover). */
  snl: Omit<MaskLearningOptions, 'budgets'> & { finetuneEpochs: number | number[] };
  /** Reshaping: the width grid, culled sets and thinning searched under each budget (src/reduce/reshape.ts). */
  reshape: ReshapeOptions;
}

/** `--snl-finetune-epochs` values as the options hold them: one number, or one per budget (other counts are named). */
export function snlFinetuneOption(values: readonly number[], budgets: readonly unknown[]): number | number[] {
  if (!values.length || !values.every((x) => Number.isInteger(x) && x >= 0))
    throw new Error(`--snl-finetune-epochs: '${values.join(',')}' must be non-negative integers`);
  if (values.length > 1 && values.length !== budgets.length)
    throw new Error(
      `--snl-finetune-epochs: ${values.length} values for ${budgets.length} budgets; give one value or one per budget`,
    );
  return values.length === 1 ? values[0]! : [...values];
}

/** The KD fine-tuning epochs of the learned mask for `budget`. */
export function snlFinetuneEpochs(o: MethodOptions, budget: number): number {
  const e = o.snl.finetuneEpochs;
  if (typeof e === 'number') return e;
  const i = o.budgets.indexOf(budget);
  if (e.length !== o.budgets.length || i < 0)
    throw new Error(
      `snl fine-tune epochs: ${e.length} values for ${o.budgets.length} budgets (${o.budgets.join(', ')}); give one value or one per budget`,
    );
  return e[i]!;
}

export const defaultMethodOptions = (over: Partial<MethodOptions> = {}): MethodOptions => ({
  budgets: [],
  balanceCulls: [1],
  balanceThinning: [true],
  balanceRhos: [1],
  subsetTop: 1,
  snl: { ...defaultMaskLearning, finetuneEpochs: 3 },
  reshape: defaultReshapeOptions(),
  ...over,
});

/** A balanced candidate's network: alpha 1 with explicit channels, the baseline's stem width. */
export function balancedSpec(base: NetSpec, widths: number[], rho: number): NetSpec {
  return specFor(base.arch, {
    ...base,
    mask: undefined,
    alpha: 1,
    widths,
    stemWidth: scaleWidth(base.stemWidth ?? base.widths[0]!, base.alpha),
    rho,
  });
}

export interface BalancedChoice {
  budget: number;
  culled: number[];
  thinned: boolean;
  rho: number;
  widths: number[];
}

/** Balanced widths for each budget x culled set (the first k stages of the culling order) x thinning x rho; infeasible ones are left out. */
export function balancedChoices(base: NetSpec, order: number[], o: MethodOptions): BalancedChoice[] {
  const out: BalancedChoice[] = [];
  for (const budget of o.budgets)
    for (const k of o.balanceCulls) {
      if (k >= order.length) continue;
      const culled = order.slice(0, k).sort((a, b) => a - b);
      for (const thinned of o.balanceThinning)
        for (const r of o.balanceRhos) {
          const rho = base.rho * r; // relative to the baseline's stem
          const widths = balancedWidths(base, culled, thinned, rho, budget, o.balanceRatio);
          if (widths) out.push({ budget, culled, thinned, rho, widths });
        }
    }
  return out;
}

export const balancedId = (b: BalancedChoice): string =>
  `bal${b.budget}-${b.culled.length ? `cull${b.culled.join('')}` : 'all'}${b.thinned ? '-thin' : ''}-r${b.rho}`;

/** The subset search's table and the configurations it chose. */
export function subsetRows(
  base: NetSpec,
  crit: CriticalityResult,
  o: MethodOptions & { thinning: boolean[]; alphas: number[]; rhos: number[] },
  mask: (spec: NetSpec, culled: number[], thinned: boolean) => NetSpec['mask'],
): SubsetRow[] {
  return searchSubsets(subsetConfigs(base, o, mask), crit, o.budgets, o.subsetTop);
}

/**
 * The mask-learning job (`job`: the teacher's network, no mask): from the teacher's weights, one exact mask per
 * budget (`<out>/snl/mask/budget-<B>/`).
 */
export function snlMaskJob(
  o: MethodOptions,
  job: TrainConfig,
  out: string,
  teacherDir: string,
  name = 'mask',
): { id: string; config: TrainConfig } {
  const { finetuneEpochs: _, ...learn } = o.snl;
  return {
    id: `snl/${name}`,
    config: {
      ...job,
      teacher: teacherDir,
      init: teacherDir,
      out: join(out, 'snl', name),
      learnMask: { ...learn, budgets: [...o.budgets] },
    },
  };
}

export const snlMaskDir = (out: string, budget: number): string => join(out, 'snl', 'mask', `budget-${budget}`);

/**
 * The learned-mask phase on a reshaped network (`reshape` and `snl` together): the same options, its own budget, the
 * reshaped widths channel-sliced from the teacher (`job` carries widths and initSlice); out `<out>/snl/mask-<w>/`.
 */
export const reshapedMaskName = (channels: number[]): string => `mask-w${channels.join('x')}`;

/** MACs are the baseline's (masks change no linear layer); FLOPs count `relus` ReLUs instead of all. */
export function snlCost(base: NetSpec, relus: number): { macs: number; flops: number } {
  const c = countRelus({ ...base, mask: undefined });
  return { macs: c.macs, flops: c.flops - c.total + relus };
}
