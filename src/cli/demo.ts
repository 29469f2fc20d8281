import { Command } from 'commander';
import { trainModel } from '../train/run.js';
import { defaultTrainOptions } from '../train/trainer.js';

/** `npm run demo`: a small ResNet on Fashion-MNIST for one epoch (becomes a short DeepReDuce run once the pipeline lands). */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('train a small ResNet18 (alpha 0.25) on Fashion-MNIST for one epoch and print its test accuracy')
    .option('--out <dir>', 'output directory', 'runs/demo')
    .option('--epochs <n>', 'epochs', (v) => Number(v), 1)
    .action(async (o: { out: string; epochs: number }) => {
      const s = await trainModel({
        arch: 'resnet18', alpha: 0.25, dataset: 'fashion-mnist', batchSize: 128, out: o.out,
        options: { ...defaultTrainOptions, epochs: o.epochs, lr: 0.1, nesterov: true },
      });
      console.log(`demo: ResNet18 (alpha 0.25, ${s.relus.toLocaleString('en-US')} ReLUs) on Fashion-MNIST: test accuracy ${(100 * s.test_acc).toFixed(2)}% after ${s.epochs.length} epoch(s), ${s.seconds.toFixed(0)} s -> ${s.out}`);
    });
}
