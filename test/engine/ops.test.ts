import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F,
  tensor,
  tidy,
  zeros,
  ones,
  labels,
  cat,
  arange,
  manualSeed,
  randn,
  noGrad,
  rngState,
  setRngState,
  Conv2d,
} from '../../src/engine/index.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) => {
  assert.equal(a.length, b.length, 'length');
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
};

test('elementwise and matmul give known values', () =>
  tidy(() => {
    const a = tensor([1, 2, 3, 4], [2, 2]);
    const b = tensor([5, 6, 7, 8], [2, 2]);
    close(a.add(b).toFloat32(), [6, 8, 10, 12]);
    close(a.sub(b, 2).toFloat32(), [-9, -10, -11, -12]);
    close(a.mul(3).toFloat32(), [3, 6, 9, 12]);
    close(a.matmul(b).toFloat32(), [19, 22, 43, 50]);
    close(a.neg().relu().toFloat32(), [0, 0, 0, 0]);
    close(a.sum().toFloat32(), [10]);
    close(a.mean([1]).toFloat32(), [1.5, 3.5]);
    assert.deepEqual(Array.from(a.argmax(1).toArray() as BigInt64Array, Number), [1, 1]);
    assert.deepEqual(a.toList(), [
      [1, 2],
      [3, 4],
    ]);
  }));

test('shape ops: reshape, permute, cat, slice, pad, flip', () =>
  tidy(() => {
    const x = arange(0, 6).reshape([2, 3]);
    assert.deepEqual(x.permute([1, 0]).contiguous().toList(), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
    assert.deepEqual(cat([x, x], 0).shape, [4, 3]);
    assert.deepEqual(x.slice(1, 1, 3).toList(), [
      [1, 2],
      [4, 5],
    ]);
    assert.deepEqual(x.pad([1, 0]).toList(), [
      [0, 0, 1, 2],
      [0, 3, 4, 5],
    ]);
    assert.deepEqual(x.flip([1]).toList(), [
      [2, 1, 0],
      [5, 4, 3],
    ]);
  }));

test('conv2d and pooling give known values', () =>
  tidy(() => {
    const x = arange(0, 16).reshape([1, 1, 4, 4]);
    const w = ones([1, 1, 2, 2]);
    // 2x2 box sums with stride 2: [[0+1+4+5, 2+3+6+7], [8+9+12+13, 10+11+14+15]]
    close(F.conv2d(x, w, null, { stride: 2 }).toFloat32(), [10, 18, 42, 50]);
    close(F.avgPool2d(x, 2).toFloat32(), [2.5, 4.5, 10.5, 12.5]);
    close(F.maxPool2d(x, 2).toFloat32(), [5, 7, 13, 15]);
    close(F.adaptiveAvgPool2d(x, 1).toFloat32(), [7.5]);
    // padding 1 with a 3x3 kernel of ones on a 1-channel 2x2 input: every output sums all four inputs
    const y = F.conv2d(tensor([1, 2, 3, 4], [1, 1, 2, 2]), ones([1, 1, 3, 3]), tensor([0.5]), { padding: 1 });
    close(y.toFloat32(), [10.5, 10.5, 10.5, 10.5]);
  }));

test('cross-entropy and KL match hand-computed values', () =>
  tidy(() => {
    const logits = tensor([1, 2, 3, 1, 1, 1], [2, 3]);
    const y = labels([2, 0]);
    const l0 = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const l1 = Math.log(3);
    close(F.crossEntropy(logits, y).toFloat32(), [(l0 + l1) / 2], 1e-6);
    const p = [0.2, 0.3, 0.5];
    const q = [0.1, 0.6, 0.3];
    const kl = p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]!), 0);
    close(F.klDiv(tensor(q).log().unsqueeze(0), tensor(p).unsqueeze(0), 'batchmean').toFloat32(), [kl], 1e-6);
    const ls = F.crossEntropy(logits, y, { labelSmoothing: 0.1 }).item();
    assert.ok(ls > (l0 + l1) / 2, 'label smoothing raises the loss on confident logits');
  }));

test('bad shapes give an error naming the op and the shapes', () => {
  tidy(() => {
    assert.throws(
      () => tensor([1, 2, 3, 4], [2, 2]).matmul(zeros([3, 3])),
      /matmul\(\[2,2\] float32, \[3,3\] float32\)/,
    );
    assert.throws(
      () => F.conv2d(zeros([1, 3, 8, 8]), zeros([4, 2, 3, 3])),
      /conv2d\(\[1,3,8,8\] float32, \[4,2,3,3\] float32/,
    );
    assert.throws(() => tensor([1, 2, 3], [2, 2]), /shape holds 4 elements but the array has 3/);
    assert.throws(() => zeros([2]).to('float99' as never), /unknown device 'float99'/);
  });
});

test('use after dispose is an error, not a crash', () => {
  const t = zeros([2]);
  t.dispose();
  assert.throws(() => t.add(1), /after dispose/);
});

test('tidy frees intermediates and keeps what it returns', () => {
  let inner: ReturnType<typeof zeros> | undefined;
  const kept = tidy(() => {
    inner = ones([3]);
    return inner.add(1);
  });
  assert.ok(inner!.disposed);
  assert.ok(!kept.disposed);
  close(kept.toFloat32(), [2, 2, 2]);
  kept.dispose();
});

test('manual seed and RNG state make random draws repeatable', () =>
  tidy(() => {
    manualSeed(7);
    const a = randn([5]).toFloat32();
    manualSeed(7);
    close(randn([5]).toFloat32(), a, 0);
    const s = rngState();
    const b = randn([5]).toFloat32();
    setRngState(s);
    close(randn([5]).toFloat32(), b, 0);
  }));

test('noGrad stops recording', () =>
  tidy(() => {
    const w = ones([2]).setRequiresGrad();
    assert.equal(noGrad(() => w.mul(2)).requiresGrad, false);
    assert.equal(w.mul(2).requiresGrad, true);
  }));

test(
  'conv2dFused = relu(conv2d + sum), in place or not; bad shapes are named',
  { skip: F.hasFusedConv() ? false : 'addon built without oneDNN (LIBTORCH build)' },
  () =>
    tidy(() => {
      manualSeed(3);
      const x = randn([2, 8, 9, 9]).contiguous('channels_last'),
        w = randn([16, 8, 3, 3]),
        b = randn([16]);
      const sum = randn([2, 16, 5, 5]).contiguous('channels_last');
      const ref = F.conv2d(x, w, b, { stride: 2, padding: 1 }).add(sum).relu();
      const d = (a: ReturnType<typeof randn>, c: ReturnType<typeof randn>) => a.sub(c).abs().amax().item();
      for (const algorithm of ['direct', 'auto'] as const) {
        const keepSum = sum.clone();
        const y = F.conv2dFused(x, w, b, { stride: 2, padding: 1, relu: true, sum, algorithm });
        assert.ok(d(y, ref) < 1e-4, `${algorithm}: ${d(y, ref)}`);
        assert.equal(d(sum, keepSum), 0, 'sum untouched without sumInplace');
      }
      const s2 = sum.clone();
      const y2 = F.conv2dFused(x, w, b, { stride: 2, padding: 1, relu: true, sum: s2, sumInplace: true });
      assert.ok(d(y2, ref) < 1e-4 && d(s2, ref) < 1e-4, 'in place: the result is written into sum');
      // Plain and grouped, no ReLU, contiguous input.
      const wg = randn([16, 4, 3, 3]);
      assert.ok(
        d(
          F.conv2dFused(x.contiguous(), wg, null, { padding: 1, groups: 2 }),
          F.conv2d(x, wg, null, { padding: 1, groups: 2 }),
        ) < 1e-4,
      );
      assert.throws(
        () => F.conv2dFused(x, randn([16, 5, 3, 3])),
        /conv2dFused.*input channels 8 do not match weight \[16,5,3,3\]/,
      );
      assert.throws(
        () => F.conv2dFused(x, w, b, { sum: randn([2, 16, 3, 3]) }),
        /conv2dFused.*sum must be float32 of the output's shape/,
      );
    }),
);

test(
  'blocked layout (nChw16c as [N, C/16, H, W, 16]): round trip, element order, direct and Winograd convolutions',
  { skip: F.hasFusedConv() ? false : 'addon built without oneDNN (LIBTORCH build)' },
  () =>
    tidy(() => {
      manualSeed(4);
      const x = randn([2, 32, 6, 5]).contiguous('channels_last');
      const xb = F.toBlocked16(x);
      assert.deepEqual(xb.shape, [2, 2, 6, 5, 16]);
      const xs = x.toArray() as Float32Array,
        bs = xb.toArray() as Float32Array,
        cl = x.contiguous().toArray() as Float32Array;
      // [n, c, h, w] lands at [n, c / 16, h, w, c % 16].
      for (const [n, c, h, w] of [
        [0, 0, 0, 0],
        [1, 17, 3, 4],
        [0, 31, 5, 2],
        [1, 15, 0, 1],
      ] as const)
        assert.equal(
          bs[(((n * 2 + Math.floor(c / 16)) * 6 + h) * 5 + w) * 16 + (c % 16)],
          cl[((n * 32 + c) * 6 + h) * 5 + w],
        );
      assert.ok(xs.length === bs.length);
      const d = (a: ReturnType<typeof randn>, c: ReturnType<typeof randn>) => a.sub(c).abs().amax().item();
      assert.equal(d(F.fromBlocked16(xb), x), 0, 'round trip');
      const w = randn([48, 32, 3, 3]),
        b = randn([48]),
        sum = randn([2, 48, 6, 5]);
      const ref = F.conv2d(x, w, b, { padding: 1 }).add(sum).relu();
      for (const algorithm of ['direct', ...(F.hasWinograd() ? (['winograd'] as const) : [])] as const) {
        const y = F.conv2dFused(xb, w, b, {
          padding: 1,
          relu: true,
          sum: F.toBlocked16(sum),
          algorithm,
          srcBlocked: true,
          dstBlocked: true,
        });
        assert.deepEqual(y.shape, [2, 3, 6, 5, 16]);
        assert.ok(d(F.fromBlocked16(y), ref) < 1e-3, `${algorithm}: ${d(F.fromBlocked16(y), ref)}`);
      }
      // Blocked in, channels-last out (stride 2), and the errors that name the layout.
      const y2 = F.conv2dFused(xb, w, null, { stride: 2, padding: 1, srcBlocked: true });
      assert.ok(d(y2, F.conv2d(x, w, null, { stride: 2, padding: 1 })) < 1e-4);
      assert.throws(
        () => F.conv2dFused(x, w, b, { srcBlocked: true }),
        /conv2dFused.*blocked input must be a contiguous \[N, C\/16, H, W, 16\]/,
      );
      assert.throws(
        () => F.conv2dFused(xb, randn([8, 32, 3, 3]), null, { srcBlocked: true, dstBlocked: true }),
        /conv2dFused.*output channels divisible by 16/,
      );
      assert.throws(
        () => F.toBlocked16(randn([1, 8, 2, 2])),
        /toBlocked16: need \[N, C, H, W\] with C divisible by 16, got \[1, 8, 2, 2\]/,
      );
    }),
);

test("a strided 1x1 Conv2d: the strided conv's values and gradients; its channels-last backward at 64x64 runs", () => {
  manualSeed(3);
  const conv = new Conv2d(8, 16, 1, { stride: 2 });
  const x0 = randn([2, 8, 63, 63]).keep();
  // the module (a subsample, then a 1x1 conv) against libtorch's strided conv, contiguous layout
  const [y, gx, gw] = tidy(() => {
    const x = x0.detach().setRequiresGrad();
    const out = conv.forward(x);
    assert.deepEqual(out.shape, [2, 16, 32, 32]);
    out.mul(out).sum().backward();
    return [out.toFloat32(), x.grad!.toFloat32(), conv.weight.grad!.toFloat32()];
  });
  tidy(() => {
    const x = x0.detach().setRequiresGrad(),
      w = conv.weight.detach().setRequiresGrad();
    const out = F.conv2d(x, w, null, { stride: 2 });
    out.mul(out).sum().backward();
    close(y, out.toFloat32(), 1e-4);
    close(gx, x.grad!.toFloat32(), 1e-4);
    close(gw, w.grad!.toFloat32(), 1e-2);
  });
  // 8 -> 16 channels at 64x64, channels-last: libtorch 1.13's strided 1x1 backward corrupted the heap here
  const cl = new Conv2d(8, 16, 1, { stride: 2 });
  for (let k = 0; k < 3; k++)
    tidy(() =>
      cl
        .forward(randn([2, 8, 64, 64]).contiguous('channels_last'))
        .sum()
        .backward(),
    );
});
