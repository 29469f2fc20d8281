import { native } from './native.js';
import { Tensor, type Reduction } from './tensor.js';

/** A size or stride given once for both spatial dimensions or as [h, w]. */
type Size2 = number | [number, number];

const pair = (v: Size2): [number, number] => (typeof v === 'number' ? [v, v] : v);
const opt = (t: Tensor | null | undefined) => t?.handle ?? null;

export interface Conv2dOptions {
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
  groups?: number;
}

/** The arguments conv2d and conv2dFused share: input, weight, bias, stride, padding, dilation, groups. */
function convArgs(x: Tensor, w: Tensor, b: Tensor | null, o: Conv2dOptions) {
  const { stride, padding, dilation, groups } = o;
  return [x.handle, w.handle, opt(b), pair(stride ?? 1), pair(padding ?? 0), pair(dilation ?? 1), groups ?? 1];
}

export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return new Tensor(native.conv2d(...convArgs(x, w, b, o)));
}

export interface FusedConvOptions extends Conv2dOptions {
  /** ReLU after the (optional) sum. */
  relu?: boolean;
  /** Added to the convolution's output before the ReLU (a residual). */
  sum?: Tensor | null;
  /** Write the result into `sum` (nothing else may read it afterwards). */
  sumInplace?: boolean;
  /** 'direct' (libtorch's choice), 'auto' (oneDNN chooses) or 'winograd' (needs hasWinograd() and blocked layouts). */
  algorithm?: 'direct' | 'auto' | 'winograd';
  /** The input is oneDNN's nChw16c layout held as a contiguous [N, C/16, H, W, 16] tensor (see toBlocked16). */
  srcBlocked?: boolean;
  /** Produce the output (and take `sum`) in that blocked layout. */
  dstBlocked?: boolean;
}

/** Whether this build has oneDNN's fused convolutions (the system libtorch with libdnnl-dev). */
export const hasFusedConv = (): boolean => native.dnnlVersion() !== '';

/**
 * Inference only (no autograd): relu(conv2d(x, w, b) + sum) as one oneDNN primitive, float32 on the CPU in
 * channels-last or (src/dstBlocked) nChw16c. The primitive and the reordered weights are cached by weight tensor,
 * input shape and layouts.
 */
export function conv2dFused(x: Tensor, w: Tensor, b: Tensor | null = null, o: FusedConvOptions = {}): Tensor {
  return new Tensor(
    native.conv2dFused(
      ...convArgs(x, w, b, o),
      o.relu ?? false,
      opt(o.sum),
      o.sumInplace ?? false,
      o.algorithm ?? 'direct',
      o.srcBlocked ?? false,
      o.dstBlocked ?? false,
    ),
  );
}

/** Whether oneDNN offers a Winograd convolution on this CPU (its float32 Winograd needs AVX-512). */
export const hasWinograd = (): boolean => native.dnnlHasWinograd() as boolean;

/** [N, C, H, W] -> oneDNN's nChw16c as a contiguous [N, C/16, H, W, 16] tensor (C divisible by 16). */
export function toBlocked16(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (x.shape.length !== 4 || c % 16 !== 0)
    throw new Error(`toBlocked16: need [N, C, H, W] with C divisible by 16, got [${x.shape.join(', ')}]`);
  return x
    .reshape([n, c / 16, 16, h, w])
    .permute([0, 1, 3, 4, 2])
    .contiguous();
}

/** The inverse of toBlocked16: a channels-last [N, C, H, W] tensor. */
export function fromBlocked16(x: Tensor): Tensor {
  const [n, cb, h, w] = x.shape as [number, number, number, number];
  if (x.shape.length !== 5 || x.shape[4] !== 16)
    throw new Error(`fromBlocked16: need [N, C/16, H, W, 16], got [${x.shape.join(', ')}]`);
  return x
    .permute([0, 2, 3, 1, 4])
    .reshape([n, h, w, cb * 16])
    .permute([0, 3, 1, 2]);
}

/** Frees the cached fused-convolution primitives (and the weights they hold). */
export const clearFusedConvCache = (): void => {
  native.clearConvCache();
};

export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  return new Tensor(native.linear(x.handle, w.handle, opt(b)));
}

export interface BatchNormArgs {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  training: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch norm; in training mode it also updates the running statistics in place. */
export function batchNorm(x: Tensor, a: BatchNormArgs): Tensor {
  return new Tensor(
    native.batchNorm(
      x.handle,
      opt(a.weight),
      opt(a.bias),
      opt(a.runningMean),
      opt(a.runningVar),
      a.training,
      a.momentum ?? 0.1,
      a.eps ?? 1e-5,
    ),
  );
}

export const relu = (x: Tensor): Tensor => x.relu();

export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  return new Tensor(native.dropout(x.handle, p, training));
}

export function avgPool2d(x: Tensor, kernel: Size2, stride?: Size2, padding: Size2 = 0): Tensor {
  return new Tensor(native.avgPool2d(x.handle, pair(kernel), pair(stride ?? kernel), pair(padding), false, true));
}

export function maxPool2d(x: Tensor, kernel: Size2, stride?: Size2, padding: Size2 = 0): Tensor {
  return new Tensor(native.maxPool2d(x.handle, pair(kernel), pair(stride ?? kernel), pair(padding), [1, 1], false));
}

export function adaptiveAvgPool2d(x: Tensor, out: Size2): Tensor {
  return new Tensor(native.adaptiveAvgPool2d(x.handle, pair(out)));
}

/** Cross-entropy of logits [N, C] against int64 targets [N]. */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { reduction?: Reduction; labelSmoothing?: number } = {},
): Tensor {
  return new Tensor(native.crossEntropy(logits.handle, target.handle, o.reduction ?? 'mean', o.labelSmoothing ?? 0));
}

/** torch.nn.functional.kl_div: input holds log-probabilities; target probabilities (or log ones with logTarget). */
export function klDiv(logInput: Tensor, target: Tensor, reduction: Reduction = 'batchmean', logTarget = false): Tensor {
  return new Tensor(native.klDiv(logInput.handle, target.handle, reduction, logTarget));
}
