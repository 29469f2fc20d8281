import { existsSync, readFileSync } from 'node:fs';

/**
 * PI latency model: seconds = relus * perRelu + macs * perMac + layers * perLayer.
 * perRelu covers garbling, OT and evaluation of one ReLU circuit (offline + online); perMac the linear layers
 * on shares (online) plus their preprocessing; perLayer the round trips. Defaults come from the costs measured
 * on this machine (../shared/reference/private-inference.md); `deepreduce pi bench --calibrate FILE` writes
 * measured values that replace them.
 */
export interface CostModel {
  perRelu_s: number;
  perMac_s: number;
  perLayer_s: number;
  source: string;
}

export const defaultCostModel: CostModel = {
  // ~30K ReLU/s garble + ~35K ReLU/s evaluate for the 41-bit field prototype => ~62 us per ReLU in total.
  perRelu_s: 62e-6,
  // ~0.5 G MAC/s for share arithmetic in JS.
  perMac_s: 2e-9,
  // one loopback round trip plus framing per layer.
  perLayer_s: 50e-6,
  source: 'defaults from ../shared/reference/private-inference.md',
};

export function loadCostModel(file?: string): CostModel {
  if (!file || !existsSync(file)) return defaultCostModel;
  let j: Partial<CostModel>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as Partial<CostModel>;
  } catch (e) {
    throw new Error(`cost model ${file}: not valid JSON (${(e as Error).message})`);
  }
  for (const k of ['perRelu_s', 'perMac_s', 'perLayer_s'] as const)
    if (typeof j[k] !== 'number' || !(j[k]! >= 0)) throw new Error(`cost model ${file}: field '${k}' must be a non-negative number`);
  return { perRelu_s: j.perRelu_s!, perMac_s: j.perMac_s!, perLayer_s: j.perLayer_s!, source: file };
}

export function estimateLatency(m: CostModel, relus: number, macs: number, layers: number): number {
  return relus * m.perRelu_s + macs * m.perMac_s + layers * m.perLayer_s;
}
