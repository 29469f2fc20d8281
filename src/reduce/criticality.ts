/** Accuracy of the network with ReLUs kept in one stage only (the rest identities). */
export interface StageProfile {
  stage: number;
  relus: number;
  acc: number;
}

export interface CriticalityResult {
  /** Per stage: raw accuracy, ReLU count, normalised gain and the score. */
  stages: (StageProfile & { gain: number; score: number })[];
  /** Stages from least to most critical: the culling order. */
  order: number[];
  floorAcc: number;
  fullAcc: number;
}

/**
 * Criticality of stage k (documented in docs/reduce.md):
 *   gain_k  = (acc_k - acc_floor) / (acc_full - acc_floor)      accuracy a stage's ReLUs recover alone, 0..1
 *   score_k = gain_k / log2(1 + R_k / R_min)                     per doubling of ReLU cost
 * where acc_floor is the all-linear network, acc_full the all-ReLU baseline, R_k the stage's ReLU count and
 * R_min the smallest stage's. A stage whose ReLUs buy little accuracy, or buy it at a high ReLU price, is less
 * critical and is culled first. Ties break toward culling the stage with more ReLUs. Where the ReLUs buy nothing
 * (acc_full <= acc_floor: tiny or random data) no gain is defined: every gain is 0 and the ties decide.
 */
export function criticality(profiles: StageProfile[], floorAcc: number, fullAcc: number): CriticalityResult {
  if (!profiles.length) throw new Error('criticality: no stage profiles');
  const span = fullAcc - floorAcc;
  const rMin = Math.min(...profiles.map((p) => p.relus));
  const stages = profiles.map((p) => {
    const gain = span > 0 ? (p.acc - floorAcc) / span : 0;
    return { ...p, gain, score: gain / Math.log2(1 + p.relus / Math.max(rMin, 1)) };
  });
  const order = [...stages].sort((a, b) => a.score - b.score || b.relus - a.relus).map((s) => s.stage);
  return { stages, order, floorAcc, fullAcc };
}
