import * as F from './functional.js';
import { type Tensor, empty, keep, noGrad, ones, tidy, where, zeros } from './tensor.js';

/** A network layer with named parameters, buffers and children (torch.nn.Module's shape). */
export abstract class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** While > 0 (withoutWeights), modules are built without tensors: for shapes and graphs only, never to run. A
   * parameter is then undefined (an optional bias left out stays null, so `bias !== null` still says it has one). */
  static #shapesOnly = 0;
  /** Builds modules with no parameters or buffers: their configuration (channels, kernels) without any allocation. */
  static withoutWeights<T>(build: () => T): T {
    Module.#shapesOnly++;
    try {
      return build();
    } finally {
      Module.#shapesOnly--;
    }
  }
  protected param(name: string, init: () => Tensor): Tensor {
    if (Module.#shapesOnly) return undefined as unknown as Tensor;
    const t = keep(init()).setRequiresGrad(true);
    this.#params.set(name, t);
    return t;
  }
  protected buffer(name: string, init: () => Tensor): Tensor {
    if (Module.#shapesOnly) return undefined as unknown as Tensor;
    const t = keep(init());
    this.#buffers.set(name, t);
    return t;
  }
  protected child<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  *modules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, c] of this.#children) yield* c.modules(prefix ? `${prefix}.${n}` : n);
  }
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.modules(prefix)) for (const [n, t] of m.#params) out.push([p ? `${p}.${n}` : n, t]);
    return out;
  }
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [p, m] of this.modules(prefix)) for (const [n, t] of m.#buffers) out.push([p ? `${p}.${n}` : n, t]);
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  /** Parameters and buffers by dotted name (torch's state_dict naming). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }
  /** Copies values in place; every name must match and shapes must agree. */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, o: { strict?: boolean; source?: string } = {}): void {
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const where = o.source ? ` (${o.source})` : '';
    if (o.strict ?? true) {
      const missing = [...own.keys()].filter((k) => !src.has(k));
      const extra = [...src.keys()].filter((k) => !own.has(k));
      if (missing.length || extra.length)
        throw new Error(
          `state dict mismatch${where}: missing [${missing.join(', ')}], unexpected [${extra.join(', ')}]`,
        );
    }
    noGrad(() =>
      tidy(() => {
        for (const [k, t] of own) {
          const v = src.get(k);
          if (!v) continue;
          if (JSON.stringify(v.shape) !== JSON.stringify(t.shape))
            throw new Error(
              `state dict${where}: '${k}' has shape ${JSON.stringify(v.shape)}, expected ${JSON.stringify(t.shape)}`,
            );
          t.copy_(v.dtype === t.dtype ? v : v.to(t.dtype));
        }
      }),
    );
  }
  train(on = true): this {
    for (const [, m] of this.modules()) m.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }
  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.numel, 0);
  }
  dispose(): void {
    for (const [, m] of this.modules()) {
      for (const t of m.#params.values()) t.dispose();
      for (const t of m.#buffers.values()) t.dispose();
    }
  }
  call(x: Tensor): Tensor {
    return this.forward(x);
  }
}

/** Kaiming-normal (fan_out, ReLU gain), torchvision's ResNet convolution initialiser. */
export function kaimingNormalFanOut(shape: number[]): Tensor {
  const fanOut = shape[0]! * shape.slice(2).reduce((a, b) => a * b, 1);
  return noGrad(() => empty(shape).normal_(0, Math.sqrt(2 / fanOut)));
}

export interface Conv2dConfig {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;
  readonly dilation: number;
  readonly groups: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    c: Conv2dConfig = {},
  ) {
    super();
    this.stride = c.stride ?? 1;
    this.padding = c.padding ?? 0;
    this.dilation = c.dilation ?? 1;
    this.groups = c.groups ?? 1;
    this.weight = this.param('weight', () =>
      kaimingNormalFanOut([outChannels, inChannels / this.groups, kernel, kernel]),
    );
    this.bias = c.bias ? this.param('bias', () => zeros([outChannels])) : null;
  }
  forward(x: Tensor): Tensor {
    // A strided 1x1 conv is a subsample then a 1x1 conv: the same values and gradients, less work, and it avoids
    // libtorch 1.13's channels-last backward of a strided 1x1 conv, which corrupts the heap for some shapes (8 -> 16
    // channels at 48x48 and 64x64: ResNet shortcuts at alpha 1/8 on TinyImageNet).
    if (this.kernel === 1 && this.stride > 1 && this.padding === 0 && this.groups === 1)
      return F.conv2d(x.slice(2, null, null, this.stride).slice(3, null, null, this.stride), this.weight, this.bias);
    return F.conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(
    readonly channels: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = this.param('weight', () => ones([channels]));
    this.bias = this.param('bias', () => zeros([channels]));
    this.runningMean = this.buffer('running_mean', () => zeros([channels]));
    this.runningVar = this.buffer('running_var', () => ones([channels]));
  }
  forward(x: Tensor): Tensor {
    return F.batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param('weight', () => noGrad(() => empty([outFeatures, inFeatures]).uniform_(-bound, bound)));
    this.bias = bias ? this.param('bias', () => noGrad(() => empty([outFeatures]).uniform_(-bound, bound))) : null;
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

/**
 * A ReLU site: the unit DeepReDuce removes. Enabled, it is a ReLU; disabled, the identity.
 * `name` is the site's one stable name (e.g. `stage2.block1.relu1`); `onForward` lets callers observe activations.
 */
export class ReLUSite extends Module {
  static onForward: ((site: ReLUSite, x: Tensor) => void) | null = null;
  /**
   * Per-element choice between ReLU and identity, broadcast over the batch ([1, C, H, W]): a bool mask (true = ReLU;
   * the form of `kept`) or float weights g while a mask is learned, y = x + g * (relu(x) - x). Not in the state dict.
   */
  gate: Tensor | null = null;
  /** With `inplace`, the ReLU overwrites its input (torchvision's ReLU(inplace=True)): only for inputs nothing else reads. */
  constructor(
    readonly site: string,
    public enabled = true,
    readonly inplace = false,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    if (ReLUSite.onForward) ReLUSite.onForward(this, x);
    if (!this.enabled) return x;
    if (this.gate)
      return this.gate.dtype === 'bool' ? where(this.gate, x.relu(), x) : x.add(x.neg().relu().mul(this.gate));
    return this.inplace ? x.relu_() : x.relu();
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return x.flatten(1);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly out: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.out);
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernel: number,
    readonly stride: number,
    readonly padding = 0,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernel, this.stride, this.padding);
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernel: number,
    readonly stride: number = kernel,
    readonly padding = 0,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernel, this.stride, this.padding);
  }
}

export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.child(String(i), m));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.layers) y = m.forward(y);
    return y;
  }
}
