import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d, ReLUSite, Sequential } from '../engine/index.js';
import { Block, Network, conv1x1, conv3x3, type Flow } from './network.js';
import { scaleWidth, stemStride, type NetSpec } from './spec.js';

// torchvision's resnet.py, with each ReLU a named, maskable ReLUSite. Module names follow torchvision so that
// state-dict keys match (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc); site names are separate.

const shortcut = (i: number, o: number, stride: number) => new Sequential(conv1x1(i, o, stride), new BatchNorm2d(o));

/** conv3x3-BN-relu1-conv3x3-BN, + shortcut, relu2 after the add. */
export class BasicBlock extends Block {
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
  run<V>(f: Flow<V>, x: V): V {
    const out = f(this.bn2, f(this.conv2, f(this.relu1, f(this.bn1, f(this.conv1, x)))));
    return f(this.relu2, f.add(out, this.downsample ? f(this.downsample, x) : x));
  }
}

/** torchvision v1.5 bottleneck (stride on the 3x3): relu1 after conv1, relu2 after conv2, relu3 after the add. */
export class Bottleneck extends Block {
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
  run<V>(f: Flow<V>, x: V): V {
    let out = f(this.relu1, f(this.bn1, f(this.conv1, x)));
    out = f(this.relu2, f(this.bn2, f(this.conv2, out)));
    out = f(this.bn3, f(this.conv3, out));
    return f(this.relu3, f.add(out, this.downsample ? f(this.downsample, x) : x));
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
    const Unit = spec.blockType === 'bottleneck' ? Bottleneck : BasicBlock;
    const imagenet = spec.family === 'resnet-imagenet';
    const k = imagenet ? 7 : 3;
    let inC = w(spec.stemWidth ?? spec.widths[0]!);
    this.conv1 = this.child(
      'conv1',
      new Conv2d(spec.inChannels, inC, k, { stride: stemStride(spec), padding: (k - 1) / 2, bias: false }),
    );
    this.bn1 = this.child('bn1', new BatchNorm2d(inC));
    this.relu = this.child('relu', new ReLUSite('stem.relu', true, true));
    this.maxpool = imagenet ? this.child('maxpool', new MaxPool2d(3, 2, 1)) : null;
    this.layers = spec.widths.map((width, s) => {
      const blocks: Block[] = [];
      for (let b = 0; b < spec.blocks[s]!; b++) {
        blocks.push(new Unit(`stage${s + 1}.block${b}`, inC, w(width), b === 0 && s > 0 ? 2 : 1));
        inC = w(width) * Unit.expansion;
      }
      return this.child(`layer${s + 1}`, new Sequential(...blocks));
    });
    this.avgpool = this.child('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.child('fc', new Linear(inC, spec.numClasses));
  }
  run<V>(f: Flow<V>, x: V): V {
    let y = f(this.relu, f(this.bn1, f(this.conv1, x)));
    if (this.maxpool) y = f(this.maxpool, y);
    for (const layer of this.layers) y = f(layer, y);
    return f(this.fc, f.flatten(f(this.avgpool, y)));
  }
}
