// Child process for the kill-and-resume test: trains slowly so the parent can kill it mid-epoch.
import { manualSeed } from '../../src/engine/index.js';
import { fit, defaultTrainOptions } from '../../src/train/trainer.js';
import { tinyNet, syntheticData } from './synthetic.js';

const [out, epochs, delay, resume] = process.argv.slice(2);
manualSeed(5);
const net = tinyNet();
await fit(
  net,
  syntheticData({ delayMs: Number(delay) }),
  { ...defaultTrainOptions, epochs: Number(epochs), lr: 0.05, seed: 5, quiet: true, threads: 1 },
  out!,
  { resume: resume === 'resume' },
);
