// The addon's CUDA path, checked on a machine with a GPU and a CUDA LibTorch (LIBTORCH=<dir> npm run build):
//  1. device checks: --device cuda:0 is accepted, cuda:99 is refused saying why;
//  2. one training step from the same weights on the CPU and on the GPU: losses and gradients agree (checked with
//     NVIDIA_TF32_OVERRIDE=0; cuDNN's default TF32 convolutions move BN gradients at initialisation by several %);
//  3. training steps/s on each (ResNet18 alpha 0.25, batch 128, 32x32x1);
//  4. fit() on Fashion-MNIST on the GPU for --epochs, then resumed for one more epoch from its checkpoint
//     (as a queue worker's retry does), with test accuracy.
// Usage: node dist/bench/cuda.js [--device cuda:0] [--epochs 2] [--data DIR] [--limit-train N] [--seconds 5] [--out DIR]
import './lib/help.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  F,
  SGD,
  cudaAvailable,
  labels,
  manualSeed,
  randn,
  tidy,
  torchVersion,
  type Tensor,
} from '../src/engine/index.js';
import { buildNetwork, specFor, type Network } from '../src/models/index.js';
import { checkDevice } from '../src/queue/device.js';
import { fit, setDevice, defaultTrainOptions } from '../src/train/trainer.js';
import { openData } from '../src/data/index.js';
import { writeFileAtomic } from '../src/util/fs.js';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const device = arg('--device', 'cuda:0');
const epochs = Number(arg('--epochs', '2'));
const seconds = Number(arg('--seconds', '5'));
const limitTrain = Number(arg('--limit-train', '0')) || undefined;
const dataDir = args.includes('--data') ? arg('--data', '') : undefined;
const out = arg('--out', 'runs/bench-cuda');
const batch = 128;
const spec = () => specFor('resnet18', { numClasses: 10, inputSize: 32, inChannels: 1, alpha: 0.25 });

function net(dev: string): Network {
  manualSeed(0);
  const n = buildNetwork(spec());
  setDevice(n, dev);
  return n;
}

/** Loss and flattened gradients of one step on `dev` from the seed-0 weights and a fixed batch. */
function step(dev: string): { loss: number; names: string[]; grads: Float32Array[] } {
  const n = net(dev);
  manualSeed(1);
  return tidy(() => {
    const x = randn([batch, 1, 32, 32]).to(dev);
    const y = labels(Array.from({ length: batch }, (_, i) => i % 10)).to(dev);
    const loss = F.crossEntropy(n.forward(x), y);
    loss.backward();
    const ps = n.namedParameters();
    return {
      loss: loss.item(),
      names: ps.map(([k]) => k),
      grads: ps.map(([, p]) => (p.grad as Tensor).to('cpu').toFloat32()),
    };
  });
}

async function stepsPerSecond(dev: string): Promise<number> {
  const n = net(dev);
  const opt = new SGD(n.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
  const x = tidy(() => randn([batch, 1, 32, 32]).to(dev)).keep();
  const y = labels(Array.from({ length: batch }, (_, i) => i % 10))
    .to(dev)
    .keep();
  const one = () =>
    tidy(() => {
      const loss = F.crossEntropy(n.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item(); // waits for the device, so the time is the step's
    });
  for (let i = 0; i < 3; i++) one();
  let k = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    one();
    k++;
  }
  return k / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = { torch: torchVersion(), cuda: cudaAvailable(), device };
  console.log(`libtorch ${torchVersion()}, CUDA ${cudaAvailable() ? 'available' : 'NOT available'}`);
  const dev = checkDevice(device);
  let refused = '';
  try {
    checkDevice('cuda:99');
  } catch (e) {
    refused = (e as Error).message;
  }
  if (!refused) throw new Error('checkDevice(cuda:99) was accepted on a machine without 100 GPUs');
  console.log(`device check: ${device} accepted; cuda:99 refused: ${refused}`);
  result.refused = refused;

  const cpu = step('cpu');
  const gpu = step(dev);
  // |g_gpu - g_cpu| / |g_cpu| in the L2 norm, over all gradients and per tensor (cuDNN may use TF32, ~1e-3).
  let num = 0,
    den = 0;
  const perTensor = cpu.grads.map((g, i) => {
    const h = gpu.grads[i]!;
    let a = 0,
      b = 0;
    for (let j = 0; j < g.length; j++) {
      a += (g[j]! - h[j]!) ** 2;
      b += g[j]! ** 2;
    }
    num += a;
    den += b;
    return { name: cpu.names[i]!, rel: Math.sqrt(a / (b || 1)), norm: Math.sqrt(b), size: g.length };
  });
  const globalRel = Math.sqrt(num / (den || 1));
  const worst = [...perTensor].sort((x, y) => y.rel - x.rel).slice(0, 3);
  const lossRel = Math.abs(cpu.loss - gpu.loss) / Math.abs(cpu.loss);
  console.log(
    `same weights, same batch: loss cpu ${cpu.loss.toFixed(6)} gpu ${gpu.loss.toFixed(6)} (rel ${lossRel.toExponential(2)}); ` +
      `gradients: relative L2 difference ${globalRel.toExponential(2)} over all ${cpu.grads.length} tensors; worst tensors ` +
      worst
        .map((w) => `${w.name} (${w.size} values, norm ${w.norm.toExponential(2)}): ${w.rel.toExponential(2)}`)
        .join(', '),
  );
  const tf32Off = process.env.NVIDIA_TF32_OVERRIDE === '0';
  const stepAgrees = !tf32Off || (lossRel <= 1e-5 && globalRel <= 1e-2);
  if (!tf32Off)
    console.log('TF32 may be on (NVIDIA_TF32_OVERRIDE is not 0): the step comparison is reported, not checked');
  result.step = { lossCpu: cpu.loss, lossGpu: gpu.loss, lossRel, gradRel: globalRel, worst };

  const sCpu = await stepsPerSecond('cpu');
  const sGpu = await stepsPerSecond(dev);
  console.log(
    `training steps/s (batch ${batch}): cpu ${sCpu.toFixed(2)}, ${dev} ${sGpu.toFixed(2)} (x${(sGpu / sCpu).toFixed(1)})`,
  );
  result.stepsPerSecond = { cpu: sCpu, gpu: sGpu };

  mkdirSync(out, { recursive: true });
  const runDir = join(out, 'fmnist');
  const data = openData('fashion-mnist', { dir: dataDir, batchSize: batch, padTo32: true, limitTrain });
  try {
    const o = { ...defaultTrainOptions, epochs, device: dev, quiet: false };
    const t0 = performance.now();
    const first = await fit(net('cpu'), data, o, runDir);
    const t1 = performance.now();
    // A retried job: a fresh model, one more epoch, resumed from the newest checkpoint.
    const resumed = await fit(net('cpu'), data, { ...o, epochs: epochs + 1 }, runDir, { resume: true });
    if (resumed.resumedFrom !== epochs)
      throw new Error(`resume started at epoch ${resumed.resumedFrom}, expected ${epochs}`);
    const acc = resumed.final?.test_acc ?? 0;
    console.log(
      `fit on ${dev}: ${epochs} epochs of ${data.trainSize} images in ${((t1 - t0) / 1000).toFixed(1)} s ` +
        `(${first.final?.img_s.toFixed(0)} img/s), test ${(100 * (first.final?.test_acc ?? 0)).toFixed(2)}%; ` +
        `resumed from epoch ${resumed.resumedFrom} to ${epochs + 1}: test ${(100 * acc).toFixed(2)}%`,
    );
    result.fit = {
      epochs,
      seconds: (t1 - t0) / 1000,
      first: first.final,
      resumedFrom: resumed.resumedFrom,
      resumed: resumed.final,
    };
  } finally {
    await data.close();
  }
  writeFileAtomic(join(out, 'cuda.json'), JSON.stringify(result, null, 2));
  console.log(`wrote ${join(out, 'cuda.json')}`);
  if (!stepAgrees) throw new Error('with TF32 off, the CPU and GPU steps disagree beyond float32 tolerance');
}

main().catch((e) => {
  console.error(`bench/cuda: ${(e as Error).message}`);
  process.exit(1);
});
