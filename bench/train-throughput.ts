// ResNet-20 (CIFAR, widths 16/32/64, batch 128, 32x32x3) training and inference img/s in deepreduce and, in the
// same run, in PyTorch (Debian python3-torch) in its fastest layout (and TorchScript's frozen inference for
// reference). Prints both and the ratios.
// Usage: node dist/bench/train-throughput.js [--net resnet20|resnet18-0.25] [--seconds 8] [--threads 2] [--rounds 7] [--pair-seconds 3] [--json out.json]
import './lib/help.js';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setImmediate as tick } from 'node:timers/promises';
import { F, SGD, labels, manualSeed, noGrad, randn, setNumThreads, tidy, type Tensor } from '../src/engine/index.js';
import {
  fuseDefault,
  buildNetwork,
  compileInference,
  describeNetwork,
  specFor,
  type Network,
} from '../src/models/index.js';
import type { Conv2d } from '../src/engine/index.js';
import { writeFileAtomic } from '../src/util/fs.js';

const args = process.argv.slice(2);
const arg = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1]! : d);
const seconds = Number(arg('--seconds', '8'));
const threads = Number(arg('--threads', '2'));
const nRounds = Number(arg('--rounds', '7'));
const pairSeconds = Number(arg('--pair-seconds', '3'));
const batch = 128;
const size = 32;
// --net resnet20 (the issue's network) or resnet18-0.25 (the Fashion-MNIST benchmark's: 1 input channel).
const nets = {
  resnet20: {
    name: 'ResNet-20 (16/32/64)',
    arch: 'resnet20',
    alpha: 1,
    blocks: [3, 3, 3],
    widths: [16, 32, 64],
    cin: 3,
  },
  'resnet18-0.25': {
    name: 'ResNet18 alpha 0.25 (16/32/64/128)',
    arch: 'resnet18',
    alpha: 0.25,
    blocks: [2, 2, 2, 2],
    widths: [16, 32, 64, 128],
    cin: 1,
  },
} as const;
const netName = arg('--net', 'resnet20');
if (!(netName in nets)) throw new Error(`--net: unknown network '${netName}' (one of ${Object.keys(nets).join(', ')})`);
const model = nets[netName as keyof typeof nets];
const cin = model.cin;
const netSpec = () => specFor(model.arch, { numClasses: 10, inputSize: size, inChannels: cin, alpha: model.alpha });

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
  noGrad(() =>
    tidy(() => {
      for (const p of net.parameters()) if (p.rank === 4) p.setData(p.contiguous(layout));
    }),
  );
}

/** A network in `layout` with its optimizer and one fixed batch; step() is one training step. */
function trainer(layout: 'contiguous' | 'channels_last') {
  manualSeed(0);
  const net = buildNetwork(netSpec());
  toLayout(net, layout);
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
  const x: Tensor = tidy(() => randn([batch, cin, size, size]).contiguous(layout)).keep();
  const y = labels(Array.from({ length: batch }, (_, i) => i % 10)).keep();
  const step = () =>
    tidy(() => {
      const loss = F.crossEntropy(net.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  return {
    net,
    x,
    step,
    dispose: () => {
      net.dispose();
      x.dispose();
      y.dispose();
    },
  };
}

async function ours(layout: 'contiguous' | 'channels_last') {
  const t = trainer(layout);
  t.net.train();
  const train = await rate(t.step, seconds);
  t.net.eval();
  // Inference as compileInference runs it by default, and each fusion choice for the breakdown.
  const variants: Record<string, number> = {};
  for (const fuse of [
    undefined,
    false as const,
    ...(F.hasFusedConv() ? (['direct', 'auto'] as const) : []),
    ...(F.hasWinograd() ? (['winograd'] as const) : []),
  ]) {
    const infer = compileInference(t.net, { layout, ...(fuse === undefined ? {} : { fuse }) });
    variants[fuse === undefined ? 'default' : `fuse ${fuse}`] = await rate(
      () =>
        tidy(() => {
          infer(t.x);
        }),
      seconds,
    );
    infer.dispose();
  }
  const convFloor = layout === 'channels_last' ? await convOnly(t.net) : undefined;
  t.dispose();
  return {
    train_img_s: train,
    infer_img_s: variants.default!,
    infer_variants: variants,
    ...(convFloor ? { conv_only_img_s: convFloor } : {}),
  };
}

/** The network's convolutions alone, back to back on inputs of their shapes: a ceiling for any inference. */
async function convOnly(net: Network): Promise<number> {
  const nodes = describeNetwork(net);
  const convs = nodes
    .filter((n) => n.op === 'conv')
    .map((n) => {
      const m = n.module as Conv2d;
      const x = tidy(() => randn([batch, ...nodes[n.inputs[0]!]!.outShape]).contiguous('channels_last')).keep();
      return { x, m };
    });
  const r = await rate(
    () =>
      noGrad(() =>
        tidy(() => {
          for (const { x, m } of convs)
            F.conv2d(x, m.weight, m.bias, {
              stride: m.stride,
              padding: m.padding,
              dilation: m.dilation,
              groups: m.groups,
            });
        }),
      ),
    seconds,
  );
  for (const c of convs) c.x.dispose();
  return r;
}

type TorchSweep = {
  train_img_s: number;
  infer_img_s: number;
  infer_frozen_img_s: number;
  torch: string;
  layouts: Record<string, { train_img_s: number; infer_img_s: number; infer_frozen_img_s: number }>;
};

/** PyTorch in a child process: a sweep of both layouts, then short runs on request (see resnet_throughput.py). */
class PyTorchSide {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';
  constructor() {
    const py = fileURLToPath(new URL('../../bench/py/resnet_throughput.py', import.meta.url));
    const cfg = JSON.stringify({
      threads,
      batch,
      size,
      cin,
      blocks: model.blocks,
      widths: model.widths,
      seconds,
      frozen: true,
    });
    this.proc = spawn('/usr/bin/python3', [py, cfg, '--serve']);
    this.proc.stderr.on('data', (d) => {
      this.stderr += String(d);
    });
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }
  async next<T>(): Promise<T> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`PyTorch side failed (is python3-torch installed?): ${this.stderr}`);
    return JSON.parse(r.value) as T;
  }
  async run(kind: 'train' | 'infer' | 'frozen', layout: string, secs: number): Promise<number> {
    this.proc.stdin.write(`${kind} ${layout} ${secs}\n`);
    return (await this.next<{ img_s: number }>()).img_s;
  }
  close(): void {
    this.proc.stdin.end();
  }
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const best = (r: Record<string, number>) => Object.entries(r).sort((a, b) => b[1] - a[1])[0]![0];

async function main() {
  setNumThreads(threads);
  const torchSide = new PyTorchSide();
  const sweep = await torchSide.next<TorchSweep>();
  const layouts: Record<
    string,
    { train_img_s: number; infer_img_s: number; infer_variants: Record<string, number>; conv_only_img_s?: number }
  > = {};
  for (const l of ['contiguous', 'channels_last'] as const) layouts[l] = await ours(l);
  const me = {
    train_img_s: Math.max(...Object.values(layouts).map((v) => v.train_img_s)),
    infer_img_s: Math.max(...Object.values(layouts).map((v) => v.infer_img_s)),
    layouts,
  };

  // Paired rounds: each side's fastest layout, back to back, so both see the machine in the same state; the
  // headline ratio is the median over rounds (this machine's speed drifts by 20% from minute to minute).
  const pick = (
    f: (v: { train_img_s: number; infer_img_s: number }) => number,
    r: Record<string, { train_img_s: number; infer_img_s: number }>,
  ) => best(Object.fromEntries(Object.entries(r).map(([k, v]) => [k, f(v)])));
  const lay = {
    ours: {
      train: pick((v) => v.train_img_s, layouts) as 'contiguous' | 'channels_last',
      infer: pick((v) => v.infer_img_s, layouts) as 'contiguous' | 'channels_last',
    },
    torch: { train: pick((v) => v.train_img_s, sweep.layouts), infer: pick((v) => v.infer_img_s, sweep.layouts) },
  };
  const h = await headToHead(lay.ours.train, lay.ours.infer);
  const rounds: { ours_train: number; torch_train: number; ours_infer: number; torch_infer: number }[] = [];
  for (let r = 0; r < nRounds; r++) {
    const ours_train = await rate(h.train, pairSeconds);
    const torch_train = await torchSide.run('train', lay.torch.train, pairSeconds);
    const ours_infer = await rate(h.infer, pairSeconds);
    const torch_infer = await torchSide.run('infer', lay.torch.infer, pairSeconds);
    rounds.push({ ours_train, torch_train, ours_infer, torch_infer });
  }
  h.dispose();
  torchSide.close();
  const trainRatio = median(rounds.map((r) => r.ours_train / r.torch_train));
  const inferRatio = median(rounds.map((r) => r.ours_infer / r.torch_infer));

  const out = {
    model: `${model.name}, batch ${batch}, ${size}x${size}x${cin}`,
    threads,
    deepreduce: me,
    pytorch: sweep,
    layouts: lay,
    rounds,
    train_ratio: trainRatio,
    infer_ratio: inferRatio,
    sweep_ratios: {
      train: me.train_img_s / sweep.train_img_s,
      infer: me.infer_img_s / sweep.infer_img_s,
      infer_vs_frozen: me.infer_img_s / sweep.infer_frozen_img_s,
    },
    targets: { train_ratio: 1.0, infer_ratio: 1.2 },
  };
  const f = (v: number) => v.toFixed(0);
  console.log(
    `${model.name}, ${size}x${size}x${cin}, batch ${batch}, ${threads} threads (PyTorch ${sweep.torch} eager); ${nRounds} paired rounds of ${pairSeconds} s, median ratio`,
  );
  console.log(`                 deepreduce      PyTorch    ratio   target`);
  console.log(
    `train img/s   ${median(rounds.map((r) => r.ours_train))
      .toFixed(1)
      .padStart(12)} ${median(rounds.map((r) => r.torch_train))
      .toFixed(1)
      .padStart(12)} ${trainRatio.toFixed(3).padStart(8)}   >= 1.0`,
  );
  console.log(
    `infer img/s   ${median(rounds.map((r) => r.ours_infer))
      .toFixed(1)
      .padStart(12)} ${median(rounds.map((r) => r.torch_infer))
      .toFixed(1)
      .padStart(12)} ${inferRatio.toFixed(3).padStart(8)}   >= 1.2`,
  );
  console.log(
    `(rounds, ours/PyTorch: train ${rounds.map((r) => `${f(r.ours_train)}/${f(r.torch_train)}`).join(' ')}; infer ${rounds.map((r) => `${f(r.ours_infer)}/${f(r.torch_infer)}`).join(' ')}; ` +
      `layouts: ours train ${lay.ours.train}, infer ${lay.ours.infer}; PyTorch train ${lay.torch.train}, infer ${lay.torch.infer})`,
  );
  console.log(
    `(sweep, not paired: PyTorch ${Object.entries(sweep.layouts)
      .map(([k, v]) => `${k} train ${f(v.train_img_s)} infer ${f(v.infer_img_s)} frozen ${f(v.infer_frozen_img_s)}`)
      .join('; ')}; ` +
      `deepreduce ${Object.entries(layouts)
        .map(([k, v]) => `${k} train ${f(v.train_img_s)} infer ${f(v.infer_img_s)}`)
        .join('; ')}; inference folds BN into conv)`,
  );
  console.log(
    `(TorchScript frozen + optimize_for_inference: ${f(sweep.infer_frozen_img_s)} img/s; deepreduce's sweep inference is ${out.sweep_ratios.infer_vs_frozen.toFixed(3)}x that)`,
  );
  for (const [k, v] of Object.entries(layouts)) {
    console.log(
      `(${k} inference: ${Object.entries(v.infer_variants)
        .map(([n, r]) => `${n} ${r.toFixed(0)}`)
        .join(
          ', ',
        )} img/s; default = ${fuseDefault() ? `fuse ${fuseDefault()}` : 'unfused (no oneDNN in this build)'})`,
    );
  }
  const floor = layouts.channels_last!.conv_only_img_s!;
  console.log(
    `(libtorch's convolutions alone, channels_last: ${floor.toFixed(0)} img/s = ${((1000 * batch) / floor).toFixed(1)} ms per batch, ` +
      `${(floor / sweep.infer_img_s).toFixed(3)}x PyTorch's sweep inference: the most inference with the direct kernels can reach; Winograd goes past it)`,
  );
  const json = arg('--json', '');
  if (json) writeFileAtomic(json, JSON.stringify(out, null, 2));
}

/** Our training step and default inference, kept for the paired rounds. */
async function headToHead(trainLayout: 'contiguous' | 'channels_last', inferLayout: 'contiguous' | 'channels_last') {
  const t = trainer(trainLayout);
  const xi: Tensor = tidy(() => randn([batch, cin, size, size]).contiguous(inferLayout)).keep();
  t.net.eval();
  // A frozen copy: the training steps below neither see nor disturb it.
  const infer = compileInference(t.net, { layout: inferLayout });
  t.net.train();
  return {
    train: t.step,
    infer: () =>
      tidy(() => {
        infer(xi);
      }),
    dispose: () => {
      infer.dispose();
      t.dispose();
      xi.dispose();
    },
  };
}

await main();
