#!/usr/bin/env node
// The entry of one training process: `node dist/src/train/entry.js <config.json>` trains (or resumes) the TrainConfig
// in the file; the pipeline's parallel jobs (reduce/jobs.ts) start one per job.
import { readFileSync } from 'node:fs';
import { trainModel, type TrainConfig } from './run.js';
import { applyV8Settings } from '../util/v8.js';

applyV8Settings();

const file = process.argv[2];
try {
  if (!file) throw new Error('usage: entry.js <config.json>');
  let c: TrainConfig;
  try {
    c = JSON.parse(readFileSync(file, 'utf8')) as TrainConfig;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  await trainModel(c);
} catch (e) {
  process.stderr.write(`deepreduce: ${(e as Error).message}\n`);
  process.exit(1);
}
