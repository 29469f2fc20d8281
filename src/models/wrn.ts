import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Module, ReLUSite, Sequential, type Tensor } from '../engine/index.js';
import type { GraphBuilder } from './graph.js';
import { Network, conv1x1, conv3x3, type Describable } from './network.js';
import { scaleWidth, stemStride, type NetSpec } from './spec.js';

// Wide ResNet (Zagoruyko & Komodakis 2016), pre-activation blocks, no dropout. Sites: `stage{s}.block{b}.relu1`
// (BN-ReLU on the block input), `.relu2` (between the convs), and `head.relu` (after the final BN).

/** bn1-relu1-conv1-bn2-relu2-conv2 + shortcut; where the shape changes the 1x1 shortcut reads relu1's output. */
export class WideBasic extends Module implements Describable {
  readonly bn1: BatchNorm2d;
  readonly relu1: ReLUSite;
  readonly conv1: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly relu2: ReLUSite;
  readonly conv2: Conv2d;
  readonly downsample: Conv2d | null;
  constructor(site: string, inC: number, outC: number, stride: number) {
    super();
    this.bn1 = this.child('bn1', new BatchNorm2d(inC));
    this.relu1 = this.child('relu1', new ReLUSite(`${site}.relu1`));
    this.conv1 = this.child('conv1', conv3x3(inC, outC, stride));
    this.bn2 = this.child('bn2', new BatchNorm2d(outC));
    this.relu2 = this.child('relu2', new ReLUSite(`${site}.relu2`));
    this.conv2 = this.child('conv2', conv3x3(outC, outC));
    this.downsample = stride !== 1 || inC !== outC ? this.child('downsample', conv1x1(inC, outC, stride)) : null;
  }
  forward(x: Tensor): Tensor {
    const a = this.relu1.forward(this.bn1.forward(x));
    const out = this.conv2.forward(this.relu2.forward(this.bn2.forward(this.conv1.forward(a))));
    return out.add(this.downsample ? this.downsample.forward(a) : x);
  }
  describe(g: GraphBuilder, x: number, p: string): number {
    const a = g.layer(`${p}.relu1`, this.relu1, g.layer(`${p}.bn1`, this.bn1, x));
    let out = g.layer(`${p}.relu2`, this.relu2, g.layer(`${p}.bn2`, this.bn2, g.layer(`${p}.conv1`, this.conv1, a)));
    out = g.layer(`${p}.conv2`, this.conv2, out);
    return g.add(`${p}.add`, out, this.downsample ? g.layer(`${p}.downsample`, this.downsample, a) : x);
  }
}

/** conv1 stem (stride 1/rho) -> layer1..3 (stride 2 at the start of stages 2, 3) -> bn -> head.relu -> pool -> fc. */
export class WideResNet extends Network {
  readonly conv1: Conv2d;
  readonly layers: Sequential[];
  readonly bn: BatchNorm2d;
  readonly relu: ReLUSite;
  readonly avgpool: AdaptiveAvgPool2d;
  readonly fc: Linear;
  constructor(spec: NetSpec) {
    super(spec);
    const w = (c: number) => scaleWidth(c, spec.alpha);
    let inC = w(spec.stemWidth ?? 16);
    this.conv1 = this.child('conv1', new Conv2d(spec.inChannels, inC, 3, { stride: stemStride(spec), padding: 1, bias: false }));
    this.layers = spec.widths.map((width, s) => {
      const blocks: Module[] = [];
      for (let b = 0; b < spec.blocks[s]!; b++) {
        blocks.push(new WideBasic(`stage${s + 1}.block${b}`, inC, w(width), b === 0 && s > 0 ? 2 : 1));
        inC = w(width);
      }
      return this.child(`layer${s + 1}`, new Sequential(...blocks));
    });
    this.bn = this.child('bn', new BatchNorm2d(inC));
    this.relu = this.child('relu', new ReLUSite('head.relu'));
    this.avgpool = this.child('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.child('fc', new Linear(inC, spec.numClasses));
  }
  forward(x: Tensor): Tensor {
    let y = this.conv1.forward(x);
    for (const layer of this.layers) y = layer.forward(y);
    y = this.relu.forward(this.bn.forward(y));
    return this.fc.forward(this.avgpool.forward(y).flatten(1));
  }
  describe(g: GraphBuilder, x: number): number {
    let y = g.layer('conv1', this.conv1, x);
    this.layers.forEach((layer, s) => {
      layer.layers.forEach((b, i) => (y = (b as WideBasic).describe(g, y, `layer${s + 1}.${i}`)));
    });
    y = g.layer('relu', this.relu, g.layer('bn', this.bn, y));
    return g.layer('fc', this.fc, g.layer('flatten', new Flatten(), g.layer('avgpool', this.avgpool, y)));
  }
}
