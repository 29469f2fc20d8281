import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setImmediate as tick } from 'node:timers/promises';
import {
  F,
  Sequential,
  Conv2d,
  BatchNorm2d,
  ReLUSite,
  AdaptiveAvgPool2d,
  Flatten,
  Linear,
  SGD,
  tidy,
  tensor,
  labels,
  manualSeed,
  cosineSchedule,
  stepSchedule,
  withWarmup,
} from '../../src/engine/index.js';

function tinyNet(): Sequential {
  return new Sequential(
    new Conv2d(1, 8, 3, { padding: 1 }),
    new BatchNorm2d(8),
    new ReLUSite('a'),
    new Conv2d(8, 8, 3, { padding: 1, stride: 2 }),
    new BatchNorm2d(8),
    new ReLUSite('b'),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(8, 2),
  );
}

// Synthetic task: class 1 images have a bright top half, class 0 a bright bottom half.
function synthetic(n: number) {
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    for (let p = 0; p < 64; p++) {
      const top = p < 32;
      x[i * 64 + p] = (top === (y[i] === 1) ? 1 : 0) + 0.3 * Math.sin(i * 7 + p * 3);
    }
  }
  return { x: tensor(x, [n, 1, 8, 8]).keep(), y: labels(y).keep() };
}

test("a small CNN's loss falls on synthetic data", () => {
  manualSeed(0);
  const net = tinyNet();
  const { x, y } = synthetic(32);
  const opt = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9 });
  const losses: number[] = [];
  for (let i = 0; i < 40; i++) {
    losses.push(
      tidy(() => {
        const loss = F.crossEntropy(net.forward(x), y);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss.item();
      }),
    );
  }
  assert.ok(losses[39]! < 0.5 * losses[0]!, `loss ${losses[0]} -> ${losses[39]}`);
  const acc = tidy(() => net.eval().forward(x).argmax(1).eq(y).to('float32').mean().item());
  assert.ok(acc >= 0.9, `accuracy ${acc}`);
});

// Steps yield to the event loop as the trainer does while awaiting its next batch: N-API runs the
// wrappers' finalizers there (the native tensors themselves are freed at once by tidy()).
test('10,000 training steps do not grow memory', async () => {
  manualSeed(0);
  const net = tinyNet();
  const { x, y } = synthetic(4);
  const opt = new SGD(net.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const step = () =>
    tidy(() => {
      const loss = F.crossEntropy(net.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 500; i++) {
    step();
    await tick();
  }
  gc();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < 10_000; i++) {
    step();
    await tick();
  }
  gc();
  await tick();
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  // A leak of one small tensor per step would be > 10,000 allocations; allocator noise stays well under this.
  assert.ok(grown < 20, `RSS grew by ${grown.toFixed(1)} MiB over 10,000 steps`);
});

test('SGD matches torch.optim.SGD arithmetic (Nesterov, weight decay)', () =>
  tidy(() => {
    const p = tensor([1, -2]).setRequiresGrad();
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.5 });
    // Two steps of loss = sum(p^2): g = 2p. Hand-computed with torch's update rule.
    let pv = [1, -2];
    let buf: number[] | null = null;
    for (let s = 0; s < 2; s++) {
      p.square().sum().backward();
      opt.step();
      opt.zeroGrad();
      const d = pv.map((v) => 2 * v + 0.5 * v);
      buf = buf ? buf.map((b, i) => 0.9 * b + d[i]!) : d;
      pv = pv.map((v, i) => v - 0.1 * (d[i]! + 0.9 * buf![i]!));
    }
    const got = p.toFloat32();
    assert.ok(Math.abs(got[0]! - pv[0]!) < 1e-6 && Math.abs(got[1]! - pv[1]!) < 1e-6, `${got} vs ${pv}`);
  }));

test('learning-rate schedules', () => {
  const c = cosineSchedule(0.1, 10);
  assert.equal(c(0), 0.1);
  assert.ok(Math.abs(c(5) - 0.05) < 1e-12);
  assert.ok(Math.abs(c(10)) < 1e-12);
  const s = stepSchedule(0.1, [80, 120]);
  assert.ok(Math.abs(s(79) - 0.1) < 1e-12 && Math.abs(s(80) - 0.01) < 1e-12 && Math.abs(s(130) - 0.001) < 1e-12);
  const w = withWarmup(c, 2);
  assert.ok(Math.abs(w(1) - 0.05) < 1e-12);
  assert.equal(w(2), 0.1);
});
