import { type Command, Option } from 'commander';
import { join } from 'node:path';
import { defaultTrainOptions, evaluate } from '../train/trainer.js';
import { trainModel, type TrainConfig } from '../train/run.js';
import { loadModelDir, openTestData } from '../train/modeldir.js';
import { writeFileAtomic } from '../util/fs.js';

export const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`not a number: '${v}'`);
  return n;
};
const ints = (v: string) =>
  v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n)) throw new Error(`not a list of integers: '${v}'`);
    return n;
  });

/** Options shared by `train` and the pipeline's trainings. */
export function addTrainingOptions(cmd: Command): Command {
  return cmd
    .option(
      '--dataset <name>',
      'dataset (fashion-mnist, mnist, cifar10, cifar100, tiny-imagenet, folder)',
      'fashion-mnist',
    )
    .option('--data <dir>', 'dataset folder (default: Debian Fashion-MNIST or the fetch folder)')
    .option('--epochs <n>', 'epochs', num, defaultTrainOptions.epochs)
    .option('--batch-size <n>', 'batch size', num, 128)
    .option('--lr <x>', 'base learning rate', num, defaultTrainOptions.lr)
    .option('--momentum <x>', 'SGD momentum', num, defaultTrainOptions.momentum)
    .option('--no-nesterov', 'plain (not Nesterov) momentum')
    .option('--weight-decay <x>', 'weight decay', num, defaultTrainOptions.weightDecay)
    .addOption(
      new Option('--schedule <s>', 'learning-rate schedule').choices(['cosine', 'step', 'constant']).default('cosine'),
    )
    .option('--warmup <epochs>', 'linear warm-up epochs', num, 0)
    .option('--label-smoothing <x>', 'label smoothing', num, 0)
    .option('--seed <n>', 'seed (data order, augmentation, initialisation)', num, 0)
    .option('--threads <n>', 'libtorch threads (default: all cores)', num)
    .option('--no-pad32', 'keep 28x28 images at 28x28 (default pads them to 32x32)')
    .option('--limit-train <n>', 'use only the first N training images', num)
    .option('--limit-test <n>', 'use only the first N test images', num)
    .option('--classes <n>', "the network's classes (default: the dataset's), e.g. 1000 on a subset of ImageNet", num)
    .option('--kd-t <x>', 'distillation temperature', num, 4)
    .option('--kd-lambda <x>', 'weight of the distillation term', num, 0.9)
    .option('--quiet', 'no progress output');
}

type Opts = Record<string, any>;

export function trainConfigFrom(o: Opts): TrainConfig {
  return {
    arch: o.arch,
    preset: o.preset,
    maskFile: o.mask,
    alpha: o.alpha,
    rho: o.rho,
    blocks: o.blocks,
    dataset: o.dataset,
    dataDir: o.data,
    ...(o.classes !== undefined ? { numClasses: o.classes } : {}),
    pad32: o.pad32,
    batchSize: o.batchSize,
    teacher: o.teacher,
    init: o.init,
    limitTrain: o.limitTrain,
    limitTest: o.limitTest,
    out: o.out,
    resume: o.resume,
    options: {
      epochs: o.epochs,
      lr: o.lr,
      momentum: o.momentum,
      nesterov: o.nesterov,
      weightDecay: o.weightDecay,
      schedule: o.schedule,
      warmupEpochs: o.warmup,
      labelSmoothing: o.labelSmoothing,
      seed: o.seed,
      threads: o.threads,
      quiet: o.quiet,
      kd: { temperature: o.kdT, lambda: o.kdLambda },
    },
  };
}

export function registerTrainCommands(program: Command): void {
  addTrainingOptions(
    program
      .command('train')
      .description('train a network (optionally reduced by a preset or mask, optionally distilled from a teacher)')
      .option('--arch <name>', 'architecture', 'resnet18')
      .option('--preset <name>', 'a DeepReDuce preset (e.g. C100_12K)')
      .option('--mask <file>', 'a ReLU mask JSON ({ arch, kept | removed })')
      .option('--alpha <x>', 'width multiplier', num)
      .option('--rho <x>', 'input-resolution scale (stem stride 1/rho)', num)
      .option('--blocks <list>', 'blocks per stage, e.g. 2,1,1,1', ints)
      .option('--teacher <dir>', 'trained teacher model directory, or zoo:NAME (knowledge distillation)')
      .option('--init <dir>', "start from this model directory's weights (or zoo:NAME's)")
      .requiredOption('--out <dir>', 'output directory (model, metrics, checkpoints)')
      .option('--resume', 'continue from the newest checkpoint in --out')
      .option('--json', 'print the summary as JSON'),
  ).action(async (o: Opts) => {
    const s = await trainModel(trainConfigFrom(o));
    if (o.json) console.log(JSON.stringify(s));
    else
      console.log(
        `${s.arch}: ${s.relus.toLocaleString('en-US')} ReLUs, test accuracy ${(100 * s.test_acc).toFixed(2)}% after ${s.epochs.length} epochs (${s.seconds.toFixed(0)} s) -> ${s.out}`,
      );
  });

  program
    .command('eval')
    .description('accuracy, per-class accuracy and confusion matrix of a trained model')
    .requiredOption('--model <dir>', 'model directory, or zoo:NAME')
    .option('--dataset <name>', 'dataset (default: the one it was trained on)')
    .option('--data <dir>', 'dataset folder')
    .option('--limit-test <n>', 'use only the first N test images', num)
    .option('--json', 'JSON output')
    .action(async (o: Opts) => {
      const { net, info } = loadModelDir(o.model);
      const data = openTestData(info, o);
      try {
        const ev = await evaluate(net, data);
        const names = data.classNames ?? ev.confusion.map((_, i) => String(i));
        const perClass = ev.confusion.map((row, i) => ({
          class: names[i],
          acc:
            row[i]! /
            Math.max(
              1,
              row.reduce((a, b) => a + b, 0),
            ),
        }));
        const result = {
          model: o.model,
          dataset: data.name,
          n: data.testSize,
          acc: ev.acc,
          loss: ev.loss,
          perClass,
          confusion: ev.confusion,
        };
        writeFileAtomic(join(o.model, 'eval.json'), `${JSON.stringify(result, null, 2)}\n`);
        if (o.json) console.log(JSON.stringify(result));
        else {
          console.log(
            `${o.model} on ${data.name} (${data.testSize} images): accuracy ${(100 * ev.acc).toFixed(2)}%, loss ${ev.loss.toFixed(4)}`,
          );
          const w = Math.max(...names.map((n) => n.length), 5);
          for (const p of perClass) console.log(`  ${p.class!.padEnd(w)}  ${(100 * p.acc).toFixed(1).padStart(5)}%`);
          console.log('confusion (rows: true, columns: predicted):');
          for (const row of ev.confusion) console.log(`  ${row.map((v) => String(v).padStart(5)).join('')}`);
        }
      } finally {
        await data.close();
        net.dispose();
      }
    });
}
