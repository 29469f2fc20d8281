import { Conv2d, Module, ReLUSite, type Tensor } from '../engine/index.js';
import type { ReluMask } from './mask.js';
import type { NetSpec } from './spec.js';

/**
 * What a forward runs on: `f(m, x)` applies module m to x, `f.add` is a residual add (branch, shortcut) and
 * `f.flatten` flattens per image. The eager flow computes tensors; tracing (graph.ts) records graph nodes and shapes
 * from the same forward, so a block is written once.
 */
export interface Flow<V> {
  (m: Module, x: V): V;
  add(branch: V, shortcut: V): V;
  flatten(x: V): V;
}

/** The flow of training and eager inference: the modules' own forward on tensors. */
export const eager: Flow<Tensor> = Object.assign((m: Module, x: Tensor) => m.forward(x), {
  add: (a: Tensor, b: Tensor) => a.add(b),
  flatten: (x: Tensor) => x.flatten(1),
});

/** A module whose forward is written once over a Flow: run on tensors, traced into a graph (describeNetwork). */
export abstract class Block extends Module {
  abstract run<V>(f: Flow<V>, x: V): V;
  forward(x: Tensor): Tensor {
    return this.run(eager, x);
  }
}

/** A model built from a NetSpec: its ReLU sites are named and maskable; its graph is traced from its forward. */
export abstract class Network extends Block {
  /** The ReLU mask in force (applyMask sets it; null: every site kept). The graph reads it from here. */
  mask: ReluMask | null = null;
  constructor(readonly spec: NetSpec) {
    super();
  }
  /** Every ReLU site, enabled or not, in forward order. */
  sites(): ReLUSite[] {
    return [...this.modules()].map(([, m]) => m).filter((m): m is ReLUSite => m instanceof ReLUSite);
  }
}

export const conv3x3 = (i: number, o: number, stride = 1): Conv2d =>
  new Conv2d(i, o, 3, { stride, padding: 1, bias: false });
export const conv1x1 = (i: number, o: number, stride = 1): Conv2d => new Conv2d(i, o, 1, { stride, bias: false });
