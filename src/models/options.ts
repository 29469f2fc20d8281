// A network spec from the options a user gives (`deepreduce count`, `pi serve --arch`, the library's count): a preset
// or an architecture, then explicit overrides, then a mask file.
import { loadMask } from './maskfile.js';
import { getPreset, presetSpec } from './presets.js';
import { specFor, validateSpec, type NetSpec } from './spec.js';

export interface SpecOptions {
  arch?: string;
  input?: number;
  preset?: string;
  mask?: string;
  alpha?: number;
  rho?: number;
  classes?: number;
  blocks?: number[];
}

/** The spec these options name: a preset or an arch, then the explicit overrides, then the mask. */
export function specFromOptions(o: SpecOptions): { spec: NetSpec; maskSource: string } {
  const overrides = { inputSize: o.input, alpha: o.alpha, rho: o.rho, numClasses: o.classes, blocks: o.blocks };
  if (o.preset) {
    const p = getPreset(o.preset);
    if (o.arch && o.arch !== 'resnet18')
      throw new Error(`--preset ${p.name} is a resnet18 configuration, got --arch ${o.arch}`);
    if (o.blocks) throw new Error(`--preset ${p.name} fixes the blocks (${p.blocks}); drop --blocks`);
    const base = presetSpec(p.name);
    const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
    return { spec: validateSpec({ ...base, ...defined }), maskSource: `preset ${p.name}` };
  }
  const spec = specFor(o.arch ?? 'resnet18', overrides);
  if (!o.mask) return { spec, maskSource: 'all sites kept' };
  return { spec: { ...spec, mask: loadMask(o.mask, spec) }, maskSource: `mask ${o.mask}` };
}
