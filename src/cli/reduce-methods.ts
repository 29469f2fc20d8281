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
      'ReLU budgets of the budget-driven methods (default: --budget)',
      numbers('--budgets', (x) => Number.isInteger(x) && x > 0, 'positive integers'),
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
    );
}

/** The methods and their options from parsed CLI options. */
export function methodConfig(o: Record<string, any>): { methods: Method[]; methodOptions: MethodOptions } {
  const methods = parseMethods(o.method);
  const budgets: number[] = o.budgets ?? (o.budget !== undefined ? [o.budget] : []);
  return {
    methods,
    methodOptions: defaultMethodOptions({
      budgets,
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
        finetuneEpochs: snlFinetuneOption(o.snlFinetuneEpochs, budgets),
      },
    }),
  };
}
