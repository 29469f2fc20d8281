// ResNet-20 (CIFAR, widths 16/32/64, batch 128, 32x32x3) training and inference img/s in deepreduce and, in the
// same run, in PyTorch (Debian python3-torch) in its fastest layout (and TorchScript's frozen inference for
// reference). Prints both and the ratios.
//   node dist/bench/train-throughput.js [--seconds 8] [--threads 2] [--json out.json]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setImmediate as tick } from 'node:timers/promises';
import { F, SGD, labels, manualSeed, noGrad, randn, setNumThreads, tidy, type Tensor } from '../src/engine/index.js';
import { fuseDefault, buildNetwork, compileInference, describeNetwork, specFor, type Network } from '../src/models/index.js';
import type { Conv2d } from '../src/engine/index.js';
import { writeFileAtomic } from '../src/util/fs.js';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const seconds = Number(arg('--seconds', '8'));
const threads = Number(arg('--threads', '2'));
const batch = 128;
const size = 32;

async function rate(fn: () => void, secs: number): Promise<number> {
  for (let i = 0; i < 2; i++) fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < secs * 1000) {
    fn();
    n++;
    await tick(); // as in training, where each step awaits its batch
  }
  return (n * batch) / ((performance.now() - t0) / 1000);
}

function toLayout(net: Network, layout: 'contiguous' | 'channels_last'): void {
  noGrad(() => tidy(() => { for (const p of net.parameters()) if (p.rank === 4) p.setData(p.contiguous(layout)); }));
}

async function ours(layout: 'contiguous' | 'channels_last') {
  manualSeed(0);
  const net = buildNetwork(specFor('resnet20', { numClasses: 10, inputSize: size, inChannels: 3 }));
  toLayout(net, layout);
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
  const x: Tensor = tidy(() => randn([batch, 3, size, size]).contiguous(layout)).keep();
  const y = labels(Array.from({ length: batch }, (_, i) => i % 10)).keep();
  net.train();
  const train = await rate(() => tidy(() => {
    const loss = F.crossEntropy(net.forward(x), y);
    opt.zeroGrad();
    loss.backward();
    opt.step();
  }), seconds);
  net.eval();
  // Inference as compileInference runs it by default, and each fusion choice for the breakdown.
  const variants: Record<string, number> = {};
  for (const fuse of [undefined, false as const, ...(F.hasFusedConv() ? ['direct', 'auto'] as const : []), ...(F.hasWinograd() ? ['winograd'] as const : [])]) {
    const infer = compileInference(net, { layout, ...(fuse === undefined ? {} : { fuse }) });
    variants[fuse === undefined ? 'default' : `fuse ${fuse}`] = await rate(() => tidy(() => { infer(x); }), seconds);
    infer.dispose();
  }
  const convFloor = layout === 'channels_last' ? await convOnly(net) : undefined;
  net.dispose();
  return { train_img_s: train, infer_img_s: variants.default!, infer_variants: variants, ...(convFloor ? { conv_only_img_s: convFloor } : {}) };
}

/** The network's convolutions alone, back to back on inputs of their shapes: a ceiling for any inference. */
async function convOnly(net: Network): Promise<number> {
  const nodes = describeNetwork(net);
  const convs = nodes.filter((n) => n.op === 'conv').map((n) => {
    const m = n.module as Conv2d;
    const x = tidy(() => randn([batch, ...nodes[n.inputs[0]!]!.outShape]).contiguous('channels_last')).keep();
    return { x, m };
  });
  const r = await rate(() => noGrad(() => tidy(() => {
    for (const { x, m } of convs) F.conv2d(x, m.weight, m.bias, { stride: m.stride, padding: m.padding, dilation: m.dilation, groups: m.groups });
  })), seconds);
  for (const c of convs) c.x.dispose();
  return r;
}

type TorchResult = { train_img_s: number; infer_img_s: number; infer_frozen_img_s: number; torch: string };

function pytorch(): TorchResult {
  const py = fileURLToPath(new URL('../../bench/py/resnet_throughput.py', import.meta.url));
  const r = spawnSync('/usr/bin/python3', [py, JSON.stringify({ threads, batch, size, blocks: [3, 3, 3], widths: [16, 32, 64], seconds, frozen: true })], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`PyTorch side failed (is python3-torch installed?): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchResult;
}

async function main() {
  setNumThreads(threads);
  // PyTorch runs before and after deepreduce and keeps its better figure: a slow spell on a shared machine does
  // not flatter the ratio.
  const before = pytorch();
  const layouts: Record<string, { train_img_s: number; infer_img_s: number; infer_variants: Record<string, number>; conv_only_img_s?: number }> = {};
  for (const l of ['contiguous', 'channels_last'] as const) layouts[l] = await ours(l);
  const me = { train_img_s: Math.max(...Object.values(layouts).map((v) => v.train_img_s)), infer_img_s: Math.max(...Object.values(layouts).map((v) => v.infer_img_s)), layouts };
  const after = pytorch();
  const torch: TorchResult = {
    torch: after.torch,
    train_img_s: Math.max(before.train_img_s, after.train_img_s),
    infer_img_s: Math.max(before.infer_img_s, after.infer_img_s),
    infer_frozen_img_s: Math.max(before.infer_frozen_img_s, after.infer_frozen_img_s),
  };

  const out = {
    model: 'ResNet-20 (16/32/64), batch 128, 32x32x3', threads,
    deepreduce: me, pytorch: torch, pytorch_runs: [before, after],
    train_ratio: me.train_img_s / torch.train_img_s, infer_ratio: me.infer_img_s / torch.infer_img_s,
    infer_ratio_vs_frozen: me.infer_img_s / torch.infer_frozen_img_s,
    targets: { train_ratio: 1.0, infer_ratio: 1.2 },
  };
  console.log(`ResNet-20, batch ${batch}, ${threads} threads (PyTorch ${torch.torch}, eager, fastest layout, better of a run before and after)`);
  console.log(`                 deepreduce      PyTorch    ratio   target`);
  console.log(`train img/s   ${me.train_img_s.toFixed(1).padStart(12)} ${torch.train_img_s.toFixed(1).padStart(12)} ${out.train_ratio.toFixed(3).padStart(8)}   >= 1.0`);
  console.log(`infer img/s   ${me.infer_img_s.toFixed(1).padStart(12)} ${torch.infer_img_s.toFixed(1).padStart(12)} ${out.infer_ratio.toFixed(3).padStart(8)}   >= 1.2`);
  console.log(`(PyTorch runs: train ${before.train_img_s.toFixed(0)} / ${after.train_img_s.toFixed(0)}, infer ${before.infer_img_s.toFixed(0)} / ${after.infer_img_s.toFixed(0)}; ` +
    `TorchScript frozen + optimize_for_inference ${torch.infer_frozen_img_s.toFixed(0)} img/s -> deepreduce ${out.infer_ratio_vs_frozen.toFixed(3)}x that)`);
  console.log(`(deepreduce layouts: ${Object.entries(layouts).map(([k, v]) => `${k} train ${v.train_img_s.toFixed(0)} infer ${v.infer_img_s.toFixed(0)}`).join('; ')}; inference folds BN into conv)`);
  for (const [k, v] of Object.entries(layouts)) {
    console.log(`(${k} inference: ${Object.entries(v.infer_variants).map(([n, r]) => `${n} ${r.toFixed(0)}`).join(', ')} img/s; default = ${fuseDefault() ? `fuse ${fuseDefault()}` : 'unfused (no oneDNN in this build)'})`);
  }
  const floor = layouts.channels_last!.conv_only_img_s!;
  console.log(`(libtorch's convolutions alone, channels_last: ${floor.toFixed(0)} img/s = ${(1000 * batch / floor).toFixed(1)} ms per batch, ` +
    `${(floor / torch.infer_img_s).toFixed(3)}x PyTorch's whole inference: the most inference with the direct kernels can reach; Winograd goes past it)`);
  const json = arg('--json', '');
  if (json) writeFileAtomic(json, JSON.stringify(out, null, 2));
}

await main();
