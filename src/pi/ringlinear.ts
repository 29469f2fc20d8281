// The shape of a convolution and the contract of an exact linear map on ring vectors: what the plan, the
// preprocessors and the HE layouts need to know of a linear layer. Pure types, so the browser-safe core has them
// without the libtorch implementation (node/ring.ts).
import type { R64 } from './fixed.js';

export interface ConvGeometry {
  inShape: [number, number, number];
  outShape: [number, number, number];
  kernel: number;
  stride: number;
  padding: number;
  dilation: number;
  groups: number;
}

/** A public or secret integer-weight linear map on ring vectors (conv2d or fully connected; no bias). */
export interface RingLinear {
  readonly inSize: number;
  readonly outSize: number;
  /** Multiply-accumulates per application (for cost accounting). */
  readonly macs: number;
  apply(x: R64): R64;
  dispose(): void;
}
