import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module, ReLUSite, Sequential, type Tensor } from '../engine/index.js';
import type { GraphBuilder } from './graph.js';
import { Network, conv1x1, conv3x3, type Describable } from './network.js';
import { scaleWidth, stemStride, type NetSpec } from './spec.js';

// torchvision's resnet.py, with each ReLU a named, maskable ReLUSite. Module names follow torchvision so that
// state-dict keys match (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc); site names are separate.

const shortcut = (i: number, o: number, stride: number) => new Sequential(conv1x1(i, o, stride), new BatchNorm2d(o));

/** conv3x3-BN-relu1-conv3x3-BN, + shortcut, relu2 after the add. */
export class BasicBlock extends Module implements Describable {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu1: ReLUSite;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly downsample: Sequential | null;
  readonly relu2: ReLUSite;
  constructor(site: string, inC: number, width: number, stride: number) {
    super();
    this.conv1 = this.child('conv1', conv3x3(inC, width, stride));
    this.bn1 = this.child('bn1', new BatchNorm2d(width));
    this.relu1 = this.child('relu1', new ReLUSite(`${site}.relu1`, true, true));
    this.conv2 = this.child('conv2', conv3x3(width, width));
    this.bn2 = this.child('bn2', new BatchNorm2d(width));
    this.downsample = stride !== 1 || inC !== width ? this.child('downsample', shortcut(inC, width, stride)) : null;
    this.relu2 = this.child('relu2', new ReLUSite(`${site}.relu2`, true, true));
  }
  forward(x: Tensor): Tensor {
    const out = this.bn2.forward(this.conv2.forward(this.relu1.forward(this.bn1.forward(this.conv1.forward(x)))));
    return this.relu2.forward(out.add(this.downsample ? this.downsample.forward(x) : x));
  }
  describe(g: GraphBuilder, x: number, p: string): number {
    let out = g.layer(`${p}.relu1`, this.relu1, g.layer(`${p}.bn1`, this.bn1, g.layer(`${p}.conv1`, this.conv1, x)));
    out = g.layer(`${p}.bn2`, this.bn2, g.layer(`${p}.conv2`, this.conv2, out));
    const id = this.downsample ? g.layer(`${p}.downsample`, this.downsample, x) : x;
    return g.layer(`${p}.relu2`, this.relu2, g.add(`${p}.add`, out, id));
  }
}

/** torchvision v1.5 bottleneck (stride on the 3x3): relu1 after conv1, relu2 after conv2, relu3 after the add. */
export class Bottleneck extends Module implements Describable {
  static readonly expansion = 4;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu1: ReLUSite;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly relu2: ReLUSite;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly downsample: Sequential | null;
  readonly relu3: ReLUSite;
  constructor(site: string, inC: number, width: number, stride: number) {
    super();
    const outC = width * Bottleneck.expansion;
    this.conv1 = this.child('conv1', conv1x1(inC, width));
    this.bn1 = this.child('bn1', new BatchNorm2d(width));
    this.relu1 = this.child('relu1', new ReLUSite(`${site}.relu1`, true, true));
    this.conv2 = this.child('conv2', conv3x3(width, width, stride));
    this.bn2 = this.child('bn2', new BatchNorm2d(width));
    this.relu2 = this.child('relu2', new ReLUSite(`${site}.relu2`, true, true));
    this.conv3 = this.child('conv3', conv1x1(width, outC));
    this.bn3 = this.child('bn3', new BatchNorm2d(outC));
    this.downsample = stride !== 1 || inC !== outC ? this.child('downsample', shortcut(inC, outC, stride)) : null;
    this.relu3 = this.child('relu3', new ReLUSite(`${site}.relu3`, true, true));
  }
  forward(x: Tensor): Tensor {
    let out = this.relu1.forward(this.bn1.forward(this.conv1.forward(x)));
    out = this.relu2.forward(this.bn2.forward(this.conv2.forward(out)));
    out = this.bn3.forward(this.conv3.forward(out));
    return this.relu3.forward(out.add(this.downsample ? this.downsample.forward(x) : x));
  }
  describe(g: GraphBuilder, x: number, p: string): number {
    let out = g.layer(`${p}.relu1`, this.relu1, g.layer(`${p}.bn1`, this.bn1, g.layer(`${p}.conv1`, this.conv1, x)));
    out = g.layer(`${p}.relu2`, this.relu2, g.layer(`${p}.bn2`, this.bn2, g.layer(`${p}.conv2`, this.conv2, out)));
    out = g.layer(`${p}.bn3`, this.bn3, g.layer(`${p}.conv3`, this.conv3, out));
    const id = this.downsample ? g.layer(`${p}.downsample`, this.downsample, x) : x;
    return g.layer(`${p}.relu3`, this.relu3, g.add(`${p}.add`, out, id));
  }
}

/**
 * ResNet for the resnet-cifar (3x3 stem, no max-pool), resnet-imagenet (7x7 stem + 3x3/2 max-pool) and resnet-thin
 * families. Stem stride is 1/rho; stage s>1 starts with a stride-2 block.
 */
export class ResNet extends Network {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly relu: ReLUSite;
  readonly maxpool: MaxPool2d | null;
  readonly layers: Sequential[];
  readonly avgpool: AdaptiveAvgPool2d;
  readonly fc: Linear;
  constructor(spec: NetSpec) {
    super(spec);
    const w = (c: number) => scaleWidth(c, spec.alpha);
    const Block = spec.blockType === 'bottleneck' ? Bottleneck : BasicBlock;
    const imagenet = spec.family === 'resnet-imagenet';
    const k = imagenet ? 7 : 3;
    let inC = w(spec.stemWidth ?? spec.widths[0]!);
    this.conv1 = this.child('conv1', new Conv2d(spec.inChannels, inC, k, { stride: stemStride(spec), padding: (k - 1) / 2, bias: false }));
    this.bn1 = this.child('bn1', new BatchNorm2d(inC));
    this.relu = this.child('relu', new ReLUSite('stem.relu', true, true));
    this.maxpool = imagenet ? this.child('maxpool', new MaxPool2d(3, 2, 1)) : null;
    this.layers = spec.widths.map((width, s) => {
      const blocks: Module[] = [];
      for (let b = 0; b < spec.blocks[s]!; b++) {
        blocks.push(new Block(`stage${s + 1}.block${b}`, inC, w(width), b === 0 && s > 0 ? 2 : 1));
        inC = w(width) * Block.expansion;
      }
      return this.child(`layer${s + 1}`, new Sequential(...blocks));
    });
    this.avgpool = this.child('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.child('fc', new Linear(inC, spec.numClasses));
  }
  forward(x: Tensor): Tensor {
    let y = this.relu.forward(this.bn1.forward(this.conv1.forward(x)));
    if (this.maxpool) y = this.maxpool.forward(y);
    for (const layer of this.layers) y = layer.forward(y);
    return this.fc.forward(this.avgpool.forward(y).flatten(1));
  }
  describe(g: GraphBuilder, x: number): number {
    let y = g.layer('relu', this.relu, g.layer('bn1', this.bn1, g.layer('conv1', this.conv1, x)));
    if (this.maxpool) y = g.layer('maxpool', this.maxpool, y);
    this.layers.forEach((layer, s) => {
      layer.layers.forEach((b, i) => (y = (b as BasicBlock | Bottleneck).describe(g, y, `layer${s + 1}.${i}`)));
    });
    return g.layer('fc', this.fc, g.layer('flatten', new Flatten(), g.layer('avgpool', this.avgpool, y)));
  }
}
