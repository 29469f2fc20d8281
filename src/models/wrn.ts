import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, ReLUSite, Sequential } from '../engine/index.js';
import { Block, Network, conv1x1, conv3x3, type Flow } from './network.js';
import { scaleWidth, stemStride, type NetSpec } from './spec.js';

// Wide ResNet (Zagoruyko & Komodakis 2016), pre-activation blocks, no dropout. Sites: `stage{s}.block{b}.relu1`
// (BN-ReLU on the block input), `.relu2` (between the convs), and `head.relu` (after the final BN).

/** bn1-relu1-conv1-bn2-relu2-conv2 + shortcut; where the shape changes the 1x1 shortcut reads relu1's output. */
export class WideBasic extends Block {
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
  run<V>(f: Flow<V>, x: V): V {
    const a = f(this.relu1, f(this.bn1, x));
    const out = f(this.conv2, f(this.relu2, f(this.bn2, f(this.conv1, a))));
    return f.add(out, this.downsample ? f(this.downsample, a) : x);
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
    this.conv1 = this.child(
      'conv1',
      new Conv2d(spec.inChannels, inC, 3, { stride: stemStride(spec), padding: 1, bias: false }),
    );
    this.layers = spec.widths.map((width, s) => {
      const blocks: Block[] = [];
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
  run<V>(f: Flow<V>, x: V): V {
    let y = f(this.conv1, x);
    for (const layer of this.layers) y = f(layer, y);
    y = f(this.relu, f(this.bn, y));
    return f(this.fc, f.flatten(f(this.avgpool, y)));
  }
}
