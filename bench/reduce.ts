// The DeepReDuce benchmark preset: ResNet18 (alpha 0.25) on Fashion-MNIST, end to end on this machine.
// Prints the criticality order, the Pareto points, the ReLU reduction at <= 1 point accuracy loss and KD vs no KD
// at the smallest budget.    node dist/bench/reduce.js [--out runs/bench-reduce] [--jobs 1] [--epochs 5,2,3[,6]]
// (the 4th value: epochs for candidates fine-tuned from the teacher; 6 reaches 4.86x fewer ReLUs within 1 point)
// [--cost-model FILE from deepreduce pi bench --calibrate] [--queue redis://HOST:PORT/NAME: the trainings on that
// queue's workers (bench/queue.js runs both ways and compares)] [--limit-test N, --baseline-limit-train N: fewer
// images, for a quick check]
import { parseArgs } from 'node:util';
import { defaultReduceConfig, reduce, summaryLines } from '../src/reduce/pipeline.js';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: 'runs/bench-reduce' },
    jobs: { type: 'string', default: '1' },
    'limit-train': { type: 'string', default: '30000' },
    'criticality-limit-train': { type: 'string', default: '15000' },
    'finetune-limit-train': { type: 'string', default: '60000' },
    epochs: { type: 'string', default: '5,2,3' },
    'cost-model': { type: 'string' },
    queue: { type: 'string' },
    'limit-test': { type: 'string' },
    'baseline-limit-train': { type: 'string' },
  },
});
const [baseline, criticality, candidate, finetune] = a.epochs!.split(',').map(Number);
const t0 = Date.now();
const r = await reduce(defaultReduceConfig({
  arch: 'resnet18', baseAlpha: 0.25, dataset: 'fashion-mnist', out: a.out!,
  // The baseline (teacher) and the candidates fine-tuned from it train on all 60,000 images; candidates from scratch
  // on a subset, criticality on a smaller one.
  epochs: { baseline: baseline!, criticality: criticality!, candidate: candidate!, ...(finetune !== undefined ? { finetune } : {}) },
  criticalityLimitTrain: Number(a['criticality-limit-train']), candidateLimitTrain: Number(a['limit-train']),
  finetuneLimitTrain: Number(a['finetune-limit-train']),
  alphas: [1], rhos: [1, 0.5], thinning: [false, true], depth: false, maxCulled: 2, jobs: Number(a.jobs),
  ...(a['cost-model'] ? { costModel: a['cost-model'] } : {}),
  ...(a.queue ? { queue: a.queue } : {}), ...(a['limit-test'] ? { limitTest: Number(a['limit-test']) } : {}),
  ...(a['baseline-limit-train'] ? { limitTrain: Number(a['baseline-limit-train']) } : {}),
}), (s) => console.log(s));
console.log('');
for (const l of summaryLines(r)) console.log(l);
console.log(`total ${((Date.now() - t0) / 60000).toFixed(1)} min -> ${a.out}/report.html`);
