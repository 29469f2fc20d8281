import { type Command, InvalidArgumentError } from 'commander';
import { numberArg } from '../util/args.js';
import { join } from 'node:path';
import { defaultReduceConfig, reduce, summaryLines, writeResults } from '../reduce/pipeline.js';
import { linkName, measureRunPi, pickRecommended, type MeasurePiConfig } from '../reduce/measurepi.js';
import { measuredPiLines } from '../reduce/report-pi.js';
import { readTrainResult, trainModel } from '../train/run.js';
import { defaultTrainOptions } from '../train/trainer.js';
import { addPiProtocolOptions, piRunOptions, type PiFlags } from './pi-measure.js';

interface DemoOptions extends PiFlags {
  out: string;
  limitTrain: number;
  limitTest: number;
  piImages: number;
  tolerance: number;
}

/** Training images of each criticality run. */
const CRITICALITY_IMAGES = 4000;

const posInt = (name: string) => numberArg(name, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');

/**
 * `npm run demo`: the method end to end in minutes on two cores. A teacher (ResNet18, alpha 0.25) trains on a
 * Fashion-MNIST subset; criticality is profiled with short runs; the culled / thinned candidates keep the teacher's
 * shapes, so they start from its weights and are fine-tuned briefly with KD; the smallest one within the tolerance
 * of the teacher is then classified under two-party private inference beside the teacher, each party its own process.
 */
export function registerDemoCommand(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      'DeepReDuce end to end: train a teacher, reduce it, pick the smallest network within a tolerance, and measure both under private inference',
    )
    .option('--out <dir>', 'run directory (resumable)', 'runs/demo')
    .option(
      '--limit-train <n>',
      'training images of the teacher and of the fine-tuning',
      posInt('--limit-train'),
      10000,
    )
    .option('--limit-test <n>', 'test images for the plaintext accuracies', posInt('--limit-test'), 2000)
    .option('--pi-images <n>', 'test images classified under private inference, per model', posInt('--pi-images'), 10)
    // One epoch of fine-tuning leaves the culled candidates 2 points or so below the teacher (1.4 after two epochs),
    // and each accuracy on 2,000 test images has ~0.8 points of standard error: a 1-point tolerance picks nothing.
    .option(
      '--tolerance <points>',
      'accuracy loss (points) the chosen network may have against the teacher',
      (v) => Number(v),
      2.5,
    );
  addPiProtocolOptions(cmd).action(async (o: DemoOptions) => {
    if (!(o.tolerance >= 0)) throw new InvalidArgumentError(`--tolerance must be >= 0 points, got ${o.tolerance}`);
    const t0 = Date.now();
    const el = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
    const say = (s: string) => console.log(s);
    const dataset = 'fashion-mnist';
    const teacher = join(o.out, 'teacher');
    const epochs = 3;
    say(`demo: DeepReDuce on ResNet18 (alpha 0.25), Fashion-MNIST -> ${o.out}`);
    say(
      `1. train the teacher (all ReLUs): ${epochs} epochs on ${o.limitTrain.toLocaleString('en-US')} training images`,
    );
    const t =
      readTrainResult(teacher) ??
      (await trainModel({
        arch: 'resnet18',
        alpha: 0.25,
        dataset,
        batchSize: 128,
        limitTrain: o.limitTrain,
        limitTest: o.limitTest,
        out: teacher,
        resume: true,
        options: { ...defaultTrainOptions, epochs },
      }));
    say(
      `   teacher: ${(100 * t.test_acc).toFixed(2)}% on ${o.limitTest.toLocaleString('en-US')} test images, ${t.relus.toLocaleString('en-US')} ReLUs (${el()})`,
    );

    const critImages = Math.min(CRITICALITY_IMAGES, o.limitTrain);
    say(
      `2. reduce: criticality of each stage (1 epoch on ${critImages.toLocaleString('en-US')} images each), then cull and thin the least critical stages;`,
    );
    say(
      `   the candidates keep the teacher's shapes, start from its weights and are fine-tuned for 1 epoch with KD on ${o.limitTrain.toLocaleString('en-US')} images`,
    );
    const config = defaultReduceConfig({
      arch: 'resnet18',
      baseAlpha: 0.25,
      dataset,
      out: o.out,
      teacher,
      limitTrain: o.limitTrain,
      limitTest: o.limitTest,
      criticalityLimitTrain: critImages,
      epochs: { baseline: epochs, criticality: 1, candidate: 1, finetune: 1 },
      alphas: [1],
      rhos: [1],
      thinning: [false, true],
      depth: false,
      maxCulled: 2,
      // One short run per model cannot resolve KD against no KD: the demo leaves that comparison out.
      kdAblation: false,
      jobs: 1,
    });
    const r = await reduce(config, (s) => say(`   ${s}`));
    for (const l of summaryLines(r)) say(`   ${l}`);

    const measure: MeasurePiConfig = {
      images: o.piImages,
      models: 'recommended',
      tolerance: o.tolerance / 100,
      options: piRunOptions(o),
    };
    const pick = pickRecommended(r, measure.tolerance);
    const se = Math.sqrt((r.baseline.acc * (1 - r.baseline.acc)) / o.limitTest);
    say(
      `3. pick the smallest network within ${o.tolerance} point${o.tolerance === 1 ? '' : 's'} of the teacher's ${(100 * r.baseline.acc).toFixed(2)}% ` +
        `(each accuracy on ${o.limitTest.toLocaleString('en-US')} test images, standard error ~${(100 * se).toFixed(1)} points): ` +
        (pick.recommended ?? `none is; measuring the most accurate candidate, ${pick.measure}, instead`) +
        ` (${el()})`,
    );
    const po = measure.options,
      over = po.tls === 'insecure' ? 'plain TCP' : 'TLS';
    say(
      `4. private inference (${po.preprocess} preprocessing, ${po.relu} ReLUs, ${linkName(po)}, ${over}) on ${o.piImages} test images per model: ` +
        `a server process${po.preprocess === 'dealer' ? ', a dealer process (trusted third party)' : ''} and one client process per image (${el()})`,
    );
    r.config.measurePi = measure;
    r.measuredPi = await measureRunPi(r, measure, (s) => say(`   ${s}`));
    writeResults(o.out, r);
    for (const l of measuredPiLines(r.measuredPi)) say(`   ${l}`);
    say(`report: ${join(o.out, 'report.html')} (total ${el()})`);
  });
}
