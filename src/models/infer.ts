import { F, inferenceMode, keep, noGrad, tidy, type Tensor } from '../engine/index.js';
import { describeNetwork, foldBatchNorm, runGraph } from './graph.js';
import type { Network } from './network.js';

export interface InferenceOptions {
  /** Memory layout for activations and weights (channels_last suits oneDNN convolutions). */
  layout?: 'contiguous' | 'channels_last';
  /** Convolutions absorb the ReLU / residual add after them (oneDNN post-ops): 'direct', 'auto' (oneDNN chooses)
   * or 'winograd' (direct, and Winograd in oneDNN's blocked layout where winogradPays), false for separate ops.
   * Default: fuseDefault(). */
  fuse?: false | 'direct' | 'auto' | 'winograd';
}

/** 'winograd' where oneDNN has it on this CPU, else 'direct'; false when the addon has no oneDNN. */
export function fuseDefault(): false | 'direct' | 'winograd' {
  return !F.hasFusedConv() ? false : F.hasWinograd() ? 'winograd' : 'direct';
}

/** A plaintext inference function over a frozen copy of the network's eval-mode weights. */
export interface CompiledInference {
  (x: Tensor): Tensor;
  dispose(): void;
}

/**
 * Freezes a network for inference: BN folded into the preceding convolutions, weights in the chosen layout,
 * convolutions fused with the ReLU / residual add after them, run in libtorch's inference mode. Later changes to the network's weights are not seen.
 */
export function compileInference(net: Network, o: InferenceOptions = {}): CompiledInference {
  const layout = o.layout ?? 'channels_last';
  const fuse = o.fuse ?? fuseDefault();
  const nodes = describeNetwork(net);
  const folded = foldBatchNorm(nodes).map((f) => {
    const weight = keep(noGrad(() => f.weight.contiguous(layout)));
    f.weight.dispose();
    return { ...f, weight, bias: keep(f.bias) };
  });
  const run = ((x: Tensor) =>
    inferenceMode(() =>
      tidy(() =>
        runGraph(nodes, layout === 'channels_last' ? x.contiguous(layout) : x, {
          folded,
          inplace: true,
          fuse: fuse !== false && x.device === 'cpu' && x.dtype === 'float32' ? fuse : false,
        }),
      ),
    )) as CompiledInference;
  run.dispose = () => {
    if (fuse) F.clearFusedConvCache();
    for (const f of folded) {
      f.weight.dispose();
      f.bias.dispose();
    }
  };
  return run;
}
