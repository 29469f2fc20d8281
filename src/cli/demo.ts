import { Command } from 'commander';
import { join } from 'node:path';
import { defaultReduceConfig, reduce, summaryLines } from '../reduce/pipeline.js';

/** `npm run demo`: a short DeepReDuce run on Fashion-MNIST (ResNet18, alpha 0.25, a data subset, few epochs). */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('a short DeepReDuce run: ResNet18 (alpha 0.25) on a Fashion-MNIST subset, criticality, candidates, KD, report')
    .option('--out <dir>', 'run directory (resumable)', 'runs/demo')
    .option('--limit-train <n>', 'training images', (v) => Number(v), 6000)
    .option('--limit-test <n>', 'test images', (v) => Number(v), 2000)
    .action(async (o: { out: string; limitTrain: number; limitTest: number }) => {
      console.log(`demo: DeepReDuce on ResNet18 (alpha 0.25), Fashion-MNIST (${o.limitTrain} train / ${o.limitTest} test images) -> ${o.out}`);
      const r = await reduce(defaultReduceConfig({
        arch: 'resnet18', baseAlpha: 0.25, dataset: 'fashion-mnist', out: o.out, limitTrain: o.limitTrain, limitTest: o.limitTest,
        epochs: { baseline: 3, criticality: 1, candidate: 2 }, alphas: [1], rhos: [1, 0.5], depth: false, maxCulled: 2, jobs: 1,
      }), (s) => console.log(s));
      for (const l of summaryLines(r)) console.log(l);
      console.log(`report: ${join(o.out, 'report.html')}`);
    });
}
