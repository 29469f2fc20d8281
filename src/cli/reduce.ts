import type { Command } from 'commander';
import { join } from 'node:path';
import { defaultReduceConfig, reduce, summaryLines, type ReduceConfig } from '../reduce/pipeline.js';
import { queueRunner } from '../queue/runner.js';
import { measuredPiLines } from '../reduce/report-pi.js';
import { addMeasurePiOptions, measurePiConfig } from './pi-measure.js';
import { addMethodOptions, budgetList, methodConfig } from './reduce-methods.js';
import { InvalidArgumentError } from 'commander';
import { parseObjective } from '../reduce/latency.js';
import { DEFAULT_PI_OPTIONS } from '../reduce/measurepi.js';
import { num } from './train.js';
import { resolveModelDir } from '../zoo/zoo.js';
import { readModelInfo } from '../train/modeldir.js';

const nums = (v: string) => v.split(',').map(num);

export function registerReduceCommands(program: Command): void {
  const cmd = program
    .command('reduce')
    .description(
      'run DeepReDuce (baseline, criticality, culling/thinning/reshaping candidates, KD) and, with --method, ReLU balancing, the stage-subset search and learned masks; one Pareto report',
    )
    .option('--arch <name>', "architecture [--teacher's, else resnet18]")
    .option('--alpha <x>', "width multiplier of the baseline [--teacher's, else 1]", num)
    .option('--dataset <name>', 'dataset', 'fashion-mnist')
    .option('--data <dir>', 'dataset folder')
    .requiredOption('--out <dir>', 'run directory (resumable)')
    .option(
      '--budget <relus|time>',
      'drop candidates above this many ReLUs, or above this estimated time on the objective axis (e.g. 0.8s)',
      (v: string) => {
        const b = budgetList('--budget')(v);
        if (b.length !== 1) throw new InvalidArgumentError(`--budget takes one value, got '${v}'`);
        return b[0]!;
      },
    )
    .option(
      '--objective <axis>',
      'what the front, the main plot and the recommended model minimise: relus, latency (estimated offline + online) or online',
      (v: string) => {
        try {
          return parseObjective(v);
        } catch (e) {
          throw new InvalidArgumentError((e as Error).message);
        }
      },
      'latency',
    )
    .option('--teacher <dir>', 'use this trained all-ReLU model as baseline and teacher')
    .option(
      '--epochs <list>',
      'epochs for baseline,criticality,candidates[,candidates fine-tuned from the teacher]',
      '5,2,5',
    )
    .option('--alphas <list>', 'candidate width multipliers (relative to --alpha)', '1,0.5')
    .option('--rhos <list>', "candidate input-resolution scales, relative to the baseline's stem (1 keeps it)", '1,0.5')
    .option('--no-thinning', 'do not try thinned candidates')
    .option('--no-thin-only', 'with thinning, do not try the thinned network with no stage culled')
    .option('--no-depth', 'do not try fewer blocks')
    .option('--reshaped-full', 'also try each reshaped network (alphas, rhos, depths) with every ReLU kept')
    .option(
      '--depths <list>',
      "blocks per stage of each depth tried, e.g. 2222,1111 (colons for counts over 9: 3:4:6:3); default: the baseline's and one block fewer in every stage but the first",
      parseDepths,
    )
    .option('--max-culled <n>', 'cull at most this many stages', num, 2)
    .option('--no-kd', 'train candidates without knowledge distillation (ablation)')
    .option('--from-scratch', "never start candidates from the teacher's weights")
    .option('--finetune-lr <x>', 'learning rate when fine-tuning from the teacher', num, 0.02)
    .option('--no-kd-ablation', 'skip the no-KD run of the smallest candidate')
    .option('--jobs <n>', 'trainings in parallel (processes)', num, 1)
    .option(
      '--queue <url>',
      "run the trainings on this queue's workers instead (redis://HOST:PORT/NAME; docs/queue.md)",
    )
    .option('--batch-size <n>', 'batch size', num, 128)
    .option('--lr <x>', 'learning rate (from scratch)', num, 0.1)
    .option('--seed <n>', 'seed', num, 0)
    .option('--limit-train <n>', 'use only the first N training images', num)
    .option('--limit-test <n>', 'use only the first N test images', num)
    .option('--classes <n>', "the networks' classes (default: the dataset's), e.g. 1000 on a subset of ImageNet", num)
    .option('--criticality-limit-train <n>', 'training images for the criticality runs', num)
    .option('--candidate-limit-train <n>', 'training images for the candidate runs', num)
    .option(
      '--finetune-limit-train <n>',
      'training images for candidates fine-tuned from the teacher (default: --candidate-limit-train)',
      num,
    )
    .option('--cost-model <file>', 'PI cost model JSON (from deepreduce pi bench --calibrate)')
    .option(
      '--relu <name>',
      `ReLU protocol the latency estimate assumes: gc, ot (the measured runs follow it unless --pi-relu is given)`,
      DEFAULT_PI_OPTIONS.relu,
    )
    .option(
      '--link <profile>',
      `link the latency estimate assumes: lan, wan, none or BANDWIDTH,RTT, e.g. 3gbit,0.3ms (the measured runs follow it unless --pi-link is given)`,
      DEFAULT_PI_OPTIONS.link,
    )
    .option('--json', 'print results.json');
  addMethodOptions(addMeasurePiOptions(cmd)).action(async (o: Record<string, any>) => {
    const [b, cr, ca, ft] = nums(o.epochs);
    // A teacher fixes the baseline's shape: its arch and alpha unless given (the pipeline refuses a mismatch).
    const teacher = o.teacher ? resolveModelDir(o.teacher) : undefined;
    const ts = teacher ? readModelInfo(teacher).spec : undefined;
    const c: ReduceConfig = defaultReduceConfig({
      arch: o.arch ?? ts?.arch ?? 'resnet18',
      baseAlpha: o.alpha ?? (typeof ts?.alpha === 'number' ? ts.alpha : 1),
      dataset: o.dataset,
      dataDir: o.data,
      ...(o.classes !== undefined ? { numClasses: o.classes } : {}),
      out: o.out,
      ...(o.budget && 'relus' in o.budget ? { budget: o.budget.relus } : {}),
      ...(o.budget && 'seconds' in o.budget ? { budgetSeconds: o.budget.seconds } : {}),
      objective: o.objective,
      teacher,
      epochs: {
        baseline: b ?? 5,
        criticality: cr ?? 2,
        candidate: ca ?? 5,
        ...(ft !== undefined ? { finetune: ft } : {}),
      },
      alphas: nums(o.alphas),
      rhos: nums(o.rhos),
      thinning: o.thinning ? [false, true] : [false],
      depth: o.depth,
      ...(o.depths ? { depths: o.depths } : {}),
      ...(o.reshapedFull ? { reshapedFull: true } : {}),
      maxCulled: o.maxCulled,
      thinOnly: o.thinOnly,
      kd: o.kd,
      fromTeacher: !o.fromScratch,
      finetuneLr: o.finetuneLr,
      kdAblation: o.kdAblation && o.kd,
      jobs: o.jobs,
      queue: o.queue,
      batchSize: o.batchSize,
      lr: o.lr,
      seed: o.seed,
      limitTrain: o.limitTrain,
      limitTest: o.limitTest,
      criticalityLimitTrain: o.criticalityLimitTrain,
      candidateLimitTrain: o.candidateLimitTrain,
      finetuneLimitTrain: o.finetuneLimitTrain,
      costModel: o.costModel,
      measurePi: measurePiConfig(o, { relu: o.relu, link: o.link }),
      relu: o.relu,
      link: o.link,
      ...methodConfig(o),
    });
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const r = await reduce(c, log, c.queue ? queueRunner(c.queue, c.out, { quiet: c.quiet, log }) : undefined);
    if (o.json) console.log(JSON.stringify(r));
    else {
      for (const l of summaryLines(r)) console.log(l);
      for (const l of r.measuredPi ? measuredPiLines(r.measuredPi) : []) console.log(l);
      console.log(
        `results: ${join(o.out, 'results.json')}, ${join(o.out, 'results.csv')}, ${join(o.out, 'report.html')}`,
      );
    }
    if (r.failed.length) process.exitCode = 1;
  });
}

/** `2222,1111` or `3:4:6:3,2:2:2:2`: blocks per stage, one list per depth tried. */
export function parseDepths(v: string): number[][] {
  return v
    .split(',')
    .filter((d) => d.trim())
    .map((d) => {
      const t = d.trim();
      const blocks = (t.includes(':') ? t.split(':') : [...t]).map(Number);
      if (!blocks.length || blocks.some((b) => !Number.isInteger(b) || b < 1))
        throw new InvalidArgumentError(`'${d}' is not blocks per stage (digits, e.g. 2222, or 3:4:6:3)`);
      return blocks;
    });
}
