import { type Command, InvalidArgumentError } from 'commander';
import { numberArg } from '../util/args.js';
import { join } from 'node:path';
import { defaultReduceConfig, reduce, summaryLines, writeResults } from '../reduce/pipeline.js';
import {
  linkName,
  measurePi,
  measureRunPi,
  pickRecommended,
  type MeasurePiConfig,
  type PiMeasurement,
} from '../reduce/measurepi.js';
import { measuredPiLines } from '../reduce/report-pi.js';
import { readTrainResult, trainModel } from '../train/run.js';
import { defaultTrainOptions } from '../train/trainer.js';
import { addPiProtocolOptions, piRunOptions, type PiFlags } from './pi-measure.js';
import { writeFileAtomic } from '../util/fs.js';
import { table } from '../util/table.js';
import { readZooIndex, resolveModelDir, type ZooEntry, zooRoot } from '../zoo/zoo.js';

interface DemoOptions extends PiFlags {
  out: string;
  limitTrain: number;
  limitTest: number;
  piImages?: number;
  tolerance: number;
  fromScratch?: boolean;
  liveImages: number;
}

/** Training images of each criticality run. */
const CRITICALITY_IMAGES = 4000;

const posInt = (name: string) => numberArg(name, (n) => Number.isInteger(n) && n >= 1, 'an integer >= 1');

/**
 * `npm run demo`. With a teacher and front models in the zoo (zoo/index.json): a short live reduction of the zoo's
 * teacher, then the teacher and the front under two-party private inference, with the headline table (zooDemo).
 * --from-scratch, or an empty zoo: the method end to end in minutes on two cores. A teacher (ResNet18, alpha 0.25)
 * trains on a Fashion-MNIST subset; criticality is profiled with short runs; the culled / thinned candidates keep the teacher's
 * shapes, so they start from its weights and are fine-tuned briefly with KD; the smallest one within the tolerance
 * of the teacher is then classified under two-party private inference beside the teacher, each party its own process.
 */
export function registerDemoCommand(program: Command): void {
  const cmd = program
    .command('demo')
    .description(
      "DeepReDuce end to end: the zoo's teacher and reduced front measured under private inference, after a short live reduction (--from-scratch: train a teacher, reduce it, measure the pick)",
    )
    .option('--out <dir>', 'run directory (resumable)', 'runs/demo')
    .option(
      '--limit-train <n>',
      'training images of the teacher and of the fine-tuning',
      posInt('--limit-train'),
      10000,
    )
    .option('--limit-test <n>', 'test images for the plaintext accuracies', posInt('--limit-test'), 2000)
    .option(
      '--pi-images <n>',
      'test images classified under private inference, per model (default: 20 with the zoo, 10 from scratch)',
      posInt('--pi-images'),
    )
    .option(
      '--from-scratch',
      'train the teacher and reduce it here (the default when the zoo has no teacher and front)',
    )
    .option(
      '--live-images <n>',
      "with the zoo: training images of the short live reduction of the zoo's teacher",
      posInt('--live-images'),
      1000,
    )
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
    const root = zooRoot();
    const z = readZooIndex(root);
    const teacher = z.models.find((m) => m.role === 'teacher');
    const front = z.models.filter((m) => m.role === 'front' && m.dataset === teacher?.dataset);
    if (!o.fromScratch && teacher && front.length) return zooDemo(o, root, teacher, front);
    if (!o.fromScratch)
      console.log(
        `demo: the zoo (${root}) has ${teacher ? 'no front model' : z.models.length ? 'no teacher' : 'no models'}: ` +
          'training everything here instead, as --from-scratch does',
      );
    await scratchDemo(o);
  });
}

/** --from-scratch (and an empty zoo): train a teacher on a subset, reduce it, measure it and the pick. */
async function scratchDemo(o: DemoOptions): Promise<void> {
  if (!(o.tolerance >= 0)) throw new InvalidArgumentError(`--tolerance must be >= 0 points, got ${o.tolerance}`);
  const piImages = o.piImages ?? 10;
  const t0 = Date.now();
  const el = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
  const say = (s: string) => console.log(s);
  const dataset = 'fashion-mnist';
  const teacher = join(o.out, 'teacher');
  const epochs = 3;
  say(`demo: DeepReDuce on ResNet18 (alpha 0.25), Fashion-MNIST -> ${o.out}`);
  say(`1. train the teacher (all ReLUs): ${epochs} epochs on ${o.limitTrain.toLocaleString('en-US')} training images`);
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
    images: piImages,
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
    `4. private inference (${po.preprocess} preprocessing, ${po.relu} ReLUs, ${linkName(po)}, ${over}) on ${piImages} test images per model: ` +
      `a server process${po.preprocess === 'dealer' ? ', a dealer process (trusted third party)' : ''} and one client process per image (${el()})`,
  );
  r.config.measurePi = measure;
  r.measuredPi = await measureRunPi(r, measure, (s) => say(`   ${s}`));
  writeResults(o.out, r);
  for (const l of measuredPiLines(r.measuredPi)) say(`   ${l}`);
  say(`report: ${join(o.out, 'report.html')} (total ${el()})`);
}

/** A zoo model's measured private inference beside its recorded accuracy. */
export interface ZooRow {
  name: string;
  description: string;
  relus: number;
  acc: number;
  testImages: number;
  pi: PiMeasurement;
}

/**
 * The headline from the zoo: a short live reduction of the zoo's teacher (the pipeline at work, minutes), then the
 * teacher and the zoo's front classify test images under two-party private inference, and a table puts their ReLUs,
 * accuracy and measured latency against the teacher's.
 */
async function zooDemo(o: DemoOptions, root: string, teacher: ZooEntry, front: ZooEntry[]): Promise<void> {
  const t0 = Date.now();
  const el = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
  const say = (s: string) => console.log(s);
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const piImages = o.piImages ?? 20;
  const models = [teacher, ...[...front].sort((a, b) => b.relus - a.relus)];
  say(`demo: DeepReDuce on ${teacher.arch}, ${teacher.dataset}, with the zoo's trained models (${root}) -> ${o.out}`);
  for (const m of models)
    say(
      `   zoo:${m.name} (${m.role}): ${m.relus.toLocaleString('en-US')} ReLUs, ${pct(m.accuracy.test)} on ${m.accuracy.images.toLocaleString('en-US')} test images; ${m.description}`,
    );
  say('   (--from-scratch trains a teacher and reduces it here instead)');

  const teacherDir = resolveModelDir(`zoo:${teacher.name}`, { root });
  const live = o.liveImages,
    critImages = Math.min(500, live);
  say(
    `1. a short live reduction of zoo:${teacher.name}, to see the pipeline work: criticality of each stage (1 epoch on ${critImages.toLocaleString('en-US')} images each), ` +
      `then the least critical stage culled and fine-tuned from the teacher's weights with KD for 1 epoch on ${live.toLocaleString('en-US')} images ` +
      "(minutes of training: the zoo's front models below were trained for hours)",
  );
  const alpha = typeof teacher.spec.alpha === 'number' ? teacher.spec.alpha : 1;
  const r = await reduce(
    defaultReduceConfig({
      arch: teacher.arch,
      baseAlpha: alpha,
      dataset: teacher.dataset,
      out: join(o.out, 'live'),
      teacher: teacherDir,
      limitTrain: live,
      limitTest: Math.min(1000, o.limitTest),
      criticalityLimitTrain: critImages,
      epochs: { baseline: 1, criticality: 1, candidate: 1, finetune: 1 },
      alphas: [1],
      rhos: [1],
      thinning: [false],
      thinOnly: false,
      depth: false,
      maxCulled: 1,
      kdAblation: false,
      jobs: 1,
    }),
    (s) => say(`   ${s}`),
  );
  for (const l of summaryLines(r)) say(`   ${l}`);

  const options = piRunOptions(o);
  const over = options.tls === 'insecure' ? 'plain TCP' : 'TLS';
  say(
    `2. private inference of the zoo's teacher and front (${options.preprocess} preprocessing, ${options.relu} ReLUs, ${linkName(options)}, ${over}) ` +
      `on ${piImages} test images per model: a server process${options.preprocess === 'dealer' ? ', a dealer process (trusted third party)' : ''} and one client process per image (${el()})`,
  );
  const rows: ZooRow[] = [];
  for (const m of models) {
    const pi = await measurePi(resolveModelDir(`zoo:${m.name}`, { root }), piImages, options, {
      dataset: m.dataset,
      cache: join(o.out, 'pi', `zoo-${m.name}.json`),
      label: m.name,
      log: (s) => say(`   ${s}`),
    });
    rows.push({
      name: m.name,
      description: m.description,
      relus: m.relus,
      acc: m.accuracy.test,
      testImages: m.accuracy.images,
      pi,
    });
  }
  writeFileAtomic(
    join(o.out, 'demo.json'),
    `${JSON.stringify({ zoo: root, options, images: piImages, live: { front: r.front, baseline: r.baseline }, models: rows }, null, 2)}\n`,
  );
  say(
    `the headline: ${piImages} ${teacher.dataset} test images per model, ${options.preprocess} + ${options.relu}, ${linkName(options)}, ${over}; per image, client wall time`,
  );
  for (const l of headlineTable(rows)) say(`   ${l}`);
  for (const l of headlinePicks(rows, [1, 3])) say(`   ${l}`);
  say(
    `results: ${join(o.out, 'demo.json')}; live reduction report: ${join(o.out, 'live', 'report.html')} (total ${el()})`,
  );
}

/** A zoo row's measured total: offline + online seconds per image. */
const total = (x: ZooRow) => x.pi.offlineS.mean + x.pi.onlineS.mean;

/**
 * The pick by measured latency at each accuracy tolerance (points below the first row, the teacher): the model fastest
 * in total (offline + online) among those within it, with its speed-ups; a line saying so when none but the teacher is.
 */
export function headlinePicks(rows: ZooRow[], tolerances: number[]): string[] {
  const base = rows[0]!;
  return tolerances.map((t) => {
    const ok = rows.slice(1).filter((m) => 100 * (base.acc - m.acc) <= t + 1e-9);
    if (!ok.length) return `within ${t} point${t === 1 ? '' : 's'} of the teacher: no reduced model`;
    const m = ok.reduce((a, b) => (total(b) < total(a) ? b : a));
    return (
      `pick within ${t} point${t === 1 ? '' : 's'} (fastest in total, as measured): ${m.name}, ${(100 * m.acc).toFixed(2)}%, ` +
      `${(total(base) / total(m)).toFixed(2)}x faster in total, ${(base.pi.onlineS.mean / m.pi.onlineS.mean).toFixed(2)}x online`
    );
  });
}

/** ReLUs, accuracy and measured latency per model, with the ratios against the first row (the teacher). */
export function headlineTable(rows: ZooRow[]): string[] {
  const base = rows[0]!;
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const body = rows.map((m) => [
    m.name,
    m.relus.toLocaleString('en-US'),
    x(base.relus, m.relus),
    `${(100 * m.acc).toFixed(2)}%`,
    `${(100 * (m.acc - base.acc)).toFixed(2)}`,
    `${m.pi.agree}/${m.pi.n}`,
    total(m).toFixed(2),
    m.pi.onlineS.mean.toFixed(2),
    x(total(base), total(m)),
    x(base.pi.onlineS.mean, m.pi.onlineS.mean),
  ]);
  const head = [
    'model',
    'ReLUs',
    'fewer ReLUs',
    `accuracy (${base.testImages.toLocaleString('en-US')})`,
    'points',
    'secure = plaintext',
    'total s',
    'online s',
    'speed-up total',
    'speed-up online',
  ];
  return table(
    head,
    body,
    head.map((_, i) => i > 0),
  ).split('\n');
}
