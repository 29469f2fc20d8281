// Gradients from libtorch's autograd against central finite differences, in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, type Tensor, tensor, tidy, manualSeed, randn, labels, noGrad } from '../../src/engine/index.js';

function checkGrad(inputs: Tensor[], f: (xs: Tensor[]) => Tensor, tol = 1e-6): void {
  tidy(() => {
    for (const x of inputs) x.setRequiresGrad(true);
    f(inputs).backward();
    for (const [k, x] of inputs.entries()) {
      const analytic = x.grad!.toArray() as Float64Array;
      const base = x.detach().toArray() as Float64Array;
      const shape = x.shape;
      const eps = 1e-6;
      // A handful of coordinates per input keeps the test fast and still catches wrong gradients.
      const idx = Array.from({ length: Math.min(8, base.length) }, (_, i) =>
        Math.floor((i * base.length) / Math.min(8, base.length)),
      );
      for (const i of idx) {
        const eval_ = (d: number) =>
          noGrad(() =>
            tidy(() => {
              const b = base.slice();
              b[i]! += d;
              const xs = inputs.map((y, j) => (j === k ? tensor(b, shape) : y.detach()));
              return f(xs).item();
            }),
          );
        const numeric = (eval_(eps) - eval_(-eps)) / (2 * eps);
        assert.ok(
          Math.abs(numeric - analytic[i]!) <= tol * Math.max(1, Math.abs(numeric)),
          `input ${k}[${i}]: autograd ${analytic[i]} vs numeric ${numeric}`,
        );
      }
    }
  });
}

const r = (shape: number[]) => randn(shape, 'float64');

test('conv2d gradients (input, weight, bias; stride and padding)', () => {
  manualSeed(1);
  checkGrad([r([2, 3, 5, 5]), r([4, 3, 3, 3]), r([4])], ([x, w, b]) =>
    F.conv2d(x!, w!, b!, { stride: 2, padding: 1 }).square().sum(),
  );
});

test('batch norm gradients in training mode', () => {
  manualSeed(2);
  checkGrad([r([4, 3, 2, 2]), r([3]), r([3])], ([x, g, b]) =>
    F.batchNorm(x!, { weight: g!, bias: b!, training: true }).mul(tidyConst()).sum(),
  );
});
// A fixed non-uniform weighting so the BN output's sum is not trivially constant.
let weightCache: Tensor | null = null;
function tidyConst(): Tensor {
  if (!weightCache)
    weightCache = tensor(
      Float64Array.from({ length: 48 }, (_, i) => Math.sin(i)),
      [4, 3, 2, 2],
    ).keep();
  return weightCache;
}

test('linear gradients', () => {
  manualSeed(3);
  checkGrad([r([5, 6]), r([3, 6]), r([3])], ([x, w, b]) => F.linear(x!, w!, b!).tanh().sum());
});

test('cross-entropy gradients', () => {
  manualSeed(4);
  const y = labels([0, 2, 1, 2]).keep();
  checkGrad([r([4, 3])], ([z]) => F.crossEntropy(z!, y, { labelSmoothing: 0.1 }));
});
