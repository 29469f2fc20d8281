// CryptoNAS ReLU balancing (Ghodsi, Veldanda, Reagen, Garg, "CryptoNAS: Private Inference on a ReLU Budget",
// NeurIPS 2020): a ResNet's stages hold the same number of ReLUs when each resolution halving multiplies the
// channels by 4. Here the widths of the stages that keep ReLUs are chosen from a ReLU budget: stage s gets
// budget * r_s / sum(r) ReLUs (r = 1 for all stages, or --balance-ratio), so its channels are
// floor(share / (kept sites of the stage * H_s * W_s)). Culled stages keep the baseline's channels (they cost no
// ReLU, only FLOPs); the stem ReLU is removed as in every DeepReDuce candidate.
import { scaleWidth, siteShapes, specFor, type NetSpec } from '../models/index.js';

/** Channels per stage (alpha 1) that split `budget` ReLUs over the kept stages in the ratio `ratio`, or null if a kept stage would get no channel. */
export function balancedWidths(
  base: NetSpec,
  culled: readonly number[],
  thinned: boolean,
  rho: number,
  budget: number,
  ratio?: readonly number[],
): number[] | null {
  if (base.blockType !== 'basic' || base.family === 'wrn')
    throw new Error(
      `ReLU balancing: supports basic-block ResNets (resnet-cifar, resnet-imagenet, resnet-thin), got ${base.arch} (${base.family}, ${base.blockType})`,
    );
  const n = base.blocks.length;
  const r = ratio ?? new Array<number>(n).fill(1);
  if (r.length !== n || !r.every((v) => v > 0 && Number.isFinite(v)))
    throw new Error(`--balance-ratio: needs ${n} positive values (one per stage), got [${r.join(', ')}]`);
  const kept = base.blocks.map((_, i) => i + 1).filter((s) => !culled.includes(s));
  if (!kept.length) return null;
  const shapes = siteShapes(specFor(base.arch, { ...base, rho, mask: undefined }));
  const share = kept.reduce((t, s) => t + r[s - 1]!, 0);
  const widths = base.widths.map((w) => scaleWidth(w, base.alpha));
  for (const s of kept) {
    const [, h, w] = shapes.get(`stage${s}.block0.relu1`)! as [number, number, number];
    // relu1 and relu2 of every block, or relu1 only when thinned; every site of a stage has its output shape
    const sites = base.blocks[s - 1]! * (thinned ? 1 : 2);
    const c = Math.floor((budget * r[s - 1]!) / share / (sites * h * w));
    if (c < 1) return null;
    widths[s - 1] = c;
  }
  return widths;
}
