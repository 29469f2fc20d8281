// Pooling by loops (the browser client's, no libtorch) equals the libtorch ring convolution with unit weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ringAvgPool } from '../../../src/pi/linear/pool.js';
import { RingConv2d } from '../../../src/pi/node/ring.js';
import type { ConvGeometry } from '../../../src/pi/ringlinear.js';
import { r64Random } from '../../../src/pi/random.js';

test('ringAvgPool equals RingConv2d with unit depthwise weights (stride, padding, odd sizes, wrap-around values)', () => {
  const geoms: ConvGeometry[] = [
    { inShape: [3, 8, 8], outShape: [3, 4, 4], kernel: 2, stride: 2, padding: 0, dilation: 1, groups: 3 },
    { inShape: [2, 7, 5], outShape: [2, 4, 3], kernel: 3, stride: 2, padding: 1, dilation: 1, groups: 2 },
    { inShape: [1, 6, 6], outShape: [1, 6, 6], kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 1 },
  ];
  for (const g of geoms) {
    const x = r64Random(g.inShape[0] * g.inShape[1] * g.inShape[2]);
    const conv = new RingConv2d('pool', new Float64Array(g.outShape[0] * g.kernel ** 2).fill(1), g);
    try {
      const want = conv.apply(x),
        got = ringAvgPool(x, g);
      assert.deepEqual(got.lo, want.lo, JSON.stringify(g));
      assert.deepEqual(got.hi, want.hi, JSON.stringify(g));
    } finally {
      conv.dispose();
    }
  }
});
