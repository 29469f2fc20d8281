import { Conv2d, Module, ReLUSite } from '../engine/index.js';
import type { GraphBuilder } from './graph.js';
import type { NetSpec } from './spec.js';

/** A model built from a NetSpec: its ReLU sites are named and maskable, and it describes its own graph. */
export abstract class Network extends Module {
  constructor(readonly spec: NetSpec) {
    super();
  }
  /** Every ReLU site, enabled or not, in forward order. */
  sites(): ReLUSite[] {
    return [...this.modules()].map(([, m]) => m).filter((m): m is ReLUSite => m instanceof ReLUSite);
  }
  /** Appends this network's nodes after input node x (see describeNetwork); returns the output node. */
  abstract describe(g: GraphBuilder, x: number): number;
}

/** A block that can describe its own topology under a module path. */
export interface Describable {
  describe(g: GraphBuilder, x: number, path: string): number;
}

export const conv3x3 = (i: number, o: number, stride = 1): Conv2d => new Conv2d(i, o, 3, { stride, padding: 1, bias: false });
export const conv1x1 = (i: number, o: number, stride = 1): Conv2d => new Conv2d(i, o, 1, { stride, bias: false });
