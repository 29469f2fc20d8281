// `deepreduce reduce` options of the methods besides DeepReDuce (see src/reduce/methods.ts).
import { InvalidArgumentError, type Command } from 'commander';
import { numberArg } from '../util/args.js';
import { defaultMaskLearning } from '../train/snl.js';
import {
  defaultMethodOptions,
  parseMethods,
  snlFinetuneOption,
  type Method,
  type MethodOptions,
} from '../reduce/methods.js';
import { budgetLabel, parseBudgets, type Budget } from '../reduce/latency.js';
import { defaultReshapeOptions } from '../reduce/reshape.js';

const numbers = (name: string, ok: (v: number) => boolean, what: string) => (v: string) => {
  const xs = v.split(',').map((s) => Number(s.trim()));
  if (!xs.length || !xs.every((x) => Number.isFinite(x) && ok(x)))
    throw new InvalidArgumentError(`${name} must be ${what}, got '${v}'`);
  return xs;
};
const positive = (name: string) => numberArg(name, (x) => x > 0, '> 0');
const bools = (name: string) => (v: string) =>
  v.split(',').map((s) => {
    if (s === 'true' || s === 'yes') return true;
    if (s === 'false' || s === 'no') return false;
    throw new InvalidArgumentError(`${name} takes true/false values, got '${s}'`);
  });

export function addMethodOptions(cmd: Command): Command {
  const d = defaultMaskLearning;
  return cmd
    .option(
      '--method <list>',
      'methods: deepreduce, balanced (CryptoNAS ReLU balancing), subsets (stage-subset search), snl (learned masks), or all',
      'deepreduce',
    )
    .option(
      '--budgets <list>',
      'budgets of the budget-driven methods: ReLU counts and/or times on the objective axis (e.g. 6144,0.5s,300ms; default: --budget)',
      budgetList('--budgets'),
    )
    .option(
      '--balance-ratio <list>',
      'ReLUs per stage in this ratio (default equal), e.g. 1,1,2,2',
      numbers('--balance-ratio', (x) => x > 0, 'positive numbers'),
    )
    .option(
      '--balance-culls <list>',
      'balanced candidates cull this many stages (criticality order)',
      numbers('--balance-culls', (x) => Number.isInteger(x) && x >= 0, 'non-negative integers'),
      [1],
    )
    .option('--balance-thinning <list>', 'balanced candidates thinned (true/false list)', bools('--balance-thinning'), [
      true,
    ])
    .option(
      '--balance-rhos <list>',
      "balanced candidates' input-resolution scales",
      numbers('--balance-rhos', (x) => x > 0 && x <= 1, 'in (0, 1]'),
      [1],
    )
    .option(
      '--subset-top <n>',
      'subsets trained per budget',
      numberArg('--subset-top', (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer'),
      1,
    )
    .option(
      '--snl-granularity <g>',
      'mask parameters per element or per channel',
      (v: string) => {
        if (v !== 'element' && v !== 'channel')
          throw new InvalidArgumentError(`--snl-granularity must be element or channel, got '${v}'`);
        return v;
      },
      d.granularity,
    )
    .option(
      '--snl-reach-epochs <x>',
      'epochs in which the target count falls to the smallest budget',
      positive('--snl-reach-epochs'),
      d.reachEpochs,
    )
    .option('--snl-max-epochs <x>', 'longest mask phase', positive('--snl-max-epochs'), d.maxEpochs)
    .option('--snl-mask-lr <x>', 'Adam learning rate of the mask parameters', positive('--snl-mask-lr'), d.maskLr)
    .option(
      '--snl-weight-lr <x>',
      'SGD learning rate of the weights during the mask phase',
      numberArg('--snl-weight-lr', (x) => x >= 0, '>= 0'),
      d.weightLr,
    )
    .option('--snl-penalty <x>', 'initial L1 coefficient per ReLU', positive('--snl-penalty'), d.penalty)
    .option(
      '--snl-finetune-epochs <list>',
      'KD fine-tuning epochs of each learned mask: one value, or one per budget',
      numbers('--snl-finetune-epochs', (x) => Number.isInteger(x) && x >= 0, 'non-negative integers'),
      [3],
    )
    .option(
      '--reshape-factors <list>',
      'reshape: width factors each stage may take (relative to the teacher), searched as a grid',
      numbers('--reshape-factors', (x) => x > 0 && x <= 1, 'in (0, 1]'),
      defaultReshapeOptions().factors,
    )
    .option(
      '--reshape-widths <list>',
      "reshape: explicit channel sets instead of the grid, stages joined by 'x' (e.g. 16x32x32x64,16x16x32x64)",
      (v: string) =>
        v.split(',').map((set) => {
          const w = set.split('x').map((t) => Number(t.trim()));
          if (!w.every((x) => Number.isInteger(x) && x > 0))
            throw new InvalidArgumentError(`--reshape-widths: '${set}' must be positive integers joined by 'x'`);
          return w;
        }),
    )
    .option(
      '--reshape-culls <list>',
      'reshape: culled-stage counts searched (criticality order)',
      numbers('--reshape-culls', (x) => Number.isInteger(x) && x >= 0, 'non-negative integers'),
      defaultReshapeOptions().culls,
    )
    .option(
      '--reshape-thinning <list>',
      'reshape: thinned or not (true/false list)',
      bools('--reshape-thinning'),
      defaultReshapeOptions().thinning,
    )
    .option(
      '--reshape-top <n>',
      'reshape: configurations trained per budget',
      numberArg('--reshape-top', (x) => Number.isInteger(x) && x >= 1, 'a positive integer'),
      defaultReshapeOptions().top,
    );
}

/** `6144` or `0.5s` / `300ms` lists, as commander parsers. */
export const budgetList = (name: string) => (v: string) => {
  try {
    return parseBudgets(v, name);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

/** The methods and their options from parsed CLI options. */
export function methodConfig(o: Record<string, any>): { methods: Method[]; methodOptions: MethodOptions } {
  const methods = parseMethods(o.method);
  // --budget: a Budget from reduce's parser (a plain number, from other callers, is a ReLU count)
  const one: Budget | undefined = typeof o.budget === 'number' ? { relus: o.budget } : o.budget;
  const specs: Budget[] = o.budgets ?? (one ? [one] : []);
  const budgets = specs.flatMap((b) => ('relus' in b ? [b.relus] : []));
  return {
    methods,
    methodOptions: defaultMethodOptions({
      budgets,
      ...(specs.some((b) => 'seconds' in b) ? { budgetSpecs: specs } : {}),
      reshape: {
        factors: o.reshapeFactors,
        ...(o.reshapeWidths ? { widths: o.reshapeWidths } : {}),
        culls: o.reshapeCulls,
        thinning: o.reshapeThinning,
        top: o.reshapeTop,
      },
      balanceCulls: o.balanceCulls,
      balanceThinning: o.balanceThinning,
      balanceRhos: o.balanceRhos,
      subsetTop: o.subsetTop,
      ...(o.balanceRatio ? { balanceRatio: o.balanceRatio } : {}),
      snl: {
        ...defaultMaskLearning,
        granularity: o.snlGranularity,
        reachEpochs: o.snlReachEpochs,
        maxEpochs: Math.max(o.snlMaxEpochs, o.snlReachEpochs),
        maskLr: o.snlMaskLr,
        weightLr: o.snlWeightLr,
        penalty: o.snlPenalty,
        finetuneEpochs: snlFinetuneOption(o.snlFinetuneEpochs, specs.map(budgetLabel)),
      },
    }),
  };
}
