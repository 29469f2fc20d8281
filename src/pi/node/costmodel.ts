import { existsSync, readFileSync } from 'node:fs';
import type { LinkProfile } from '../transport/shaping.js';

/** Costs of one ReLU under a ReLU protocol (src/pi/relu/<name>). */
export interface ReluCost {
  /** CPU seconds per ReLU, offline + online, both parties. */
  compute_s: number;
  /** Bytes per ReLU between client and server, all phases, both directions. */
  bytes: number;
  /** Online flights (one-way message latencies) per kept ReLU op. */
  flights: number;
  /** Online seconds per kept ReLU without a link (the server's online ReLU steps / their ReLUs in the calibration
   *  sessions). Only in calibrated models. */
  online?: { perRelu_s: number };
}

/**
 * PI latency model for a ReLU protocol over a link:
 *   seconds = relus * (compute + bytes * 8 / bandwidth) + reluOps * flights * RTT / 2 + macs * perMac + layers * perLayer
 *             + perSession
 * (without a link profile only the compute terms). perMac and perLayer are a line fitted to the linear layers' times
 * (HE preprocessing and the online layer: for small layers mostly per layer, the ciphertexts), perLayer also the rest
 * per layer (local ops, framing); perSession the set-up (hello, plan, base OTs), which no reduction changes. Defaults
 * come from the costs measured on this machine (docs/pi.md, docs/pi-crypto.md); `deepreduce pi bench --relu gc,ot
 * --calibrate FILE` writes measured values that replace them.
 */
export interface CostModel {
  perMac_s: number;
  perLayer_s: number;
  /** Once per session (the set-up phase); files without it (older calibrations) folded it into perLayer_s. */
  perSession_s: number;
  relu: Record<string, ReluCost>;
  /** Online seconds of the rest (only in calibrated models): the server's linear layers per MAC, and the session's
   *  other online work (input, output, local ops) per conv/fc layer. */
  online?: { perMac_s: number; perLayer_s: number };
  source: string;
}

export interface LatencyContext {
  relu: string;
  link: LinkProfile | null;
}

export const defaultCostModel: CostModel = {
  // The calibration of 2026-11-26 on this 2-core machine (bench/pi.ts --link none rows of docs/pi.md's GC-and-OT table:
  // ResNet18 32x32 full, C100_230K and C100_12K, he preprocessing, TLS), rounded.
  // HE preprocessing and the online linear layers, per MAC.
  perMac_s: 11e-9,
  // per conv/fc layer: the session's set-up (base OTs), framing and local ops (this calibration predates the
  // perSession term: it holds the set-up, ~0.75 s, spread over ResNet18's 21 layers).
  perLayer_s: 36e-3,
  perSession_s: 0,
  relu: {
    // garbled circuits: 6,920 B (docs/pi-crypto.md); labels, colour bits.
    gc: { compute_s: 53e-6, bytes: 6920, flights: 2 },
    // OT (millionaires' protocol + multiplexer): 571 B, Λ + 3 = 6 flights for 32-bit comparisons (docs/pi.md).
    ot: { compute_s: 7.7e-6, bytes: 571, flights: 6 },
  },
  source: 'defaults: the calibration of 2026-11-26 (docs/pi.md)',
};

function num(j: Record<string, unknown>, k: string, file: string, where = ''): number {
  const v = j[k];
  if (typeof v !== 'number' || !(v >= 0))
    throw new Error(`cost model ${file}: field '${where}${k}' must be a non-negative number`);
  return v;
}

/** A calibration file, or the defaults. Files of the earlier form {perRelu_s, perMac_s, perLayer_s} describe gc. */
export function loadCostModel(file?: string): CostModel {
  if (!file || !existsSync(file)) return defaultCostModel;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`cost model ${file}: not valid JSON (${(e as Error).message})`);
  }
  const relu: Record<string, ReluCost> = { ...defaultCostModel.relu };
  if (j.relu !== undefined) {
    if (!j.relu || typeof j.relu !== 'object')
      throw new Error(`cost model ${file}: field 'relu' must be an object of per-protocol costs`);
    for (const [name, c] of Object.entries(j.relu as Record<string, Record<string, unknown>>)) {
      if (!c || typeof c !== 'object') throw new Error(`cost model ${file}: field 'relu.${name}' must be an object`);
      relu[name] = {
        compute_s: num(c, 'compute_s', file, `relu.${name}.`),
        bytes: num(c, 'bytes', file, `relu.${name}.`),
        flights: num(c, 'flights', file, `relu.${name}.`),
      };
      if (c.online !== undefined) {
        const o = c.online as Record<string, unknown>;
        if (!o || typeof o !== 'object')
          throw new Error(`cost model ${file}: field 'relu.${name}.online' must be an object`);
        relu[name]!.online = { perRelu_s: num(o, 'perRelu_s', file, `relu.${name}.online.`) };
      }
    }
  } else {
    relu.gc = { ...relu.gc!, compute_s: num(j, 'perRelu_s', file) };
  }
  let online: CostModel['online'];
  if (j.online !== undefined) {
    const o = j.online as Record<string, unknown>;
    if (!o || typeof o !== 'object') throw new Error(`cost model ${file}: field 'online' must be an object`);
    online = { perMac_s: num(o, 'perMac_s', file, 'online.'), perLayer_s: num(o, 'perLayer_s', file, 'online.') };
  }
  return {
    perMac_s: num(j, 'perMac_s', file),
    perLayer_s: num(j, 'perLayer_s', file),
    perSession_s: j.perSession_s === undefined ? 0 : num(j, 'perSession_s', file),
    relu,
    ...(online ? { online } : {}),
    source: file,
  };
}

/**
 * Estimated seconds of one inference; `reluOps` = kept ReLU ops (sites), which pay the online flights. Max-pool
 * comparisons count as ReLUs (each is one ReLU on a difference) and each level of a max pool's tree as a ReLU op.
 */
export function estimateLatency(
  m: CostModel,
  relus: number,
  macs: number,
  layers: number,
  ctx: LatencyContext = { relu: 'gc', link: null },
  reluOps = layers,
): number {
  const r = m.relu[ctx.relu];
  if (!r)
    throw new Error(
      `cost model ${m.source}: no costs for ReLU protocol '${ctx.relu}' (has ${Object.keys(m.relu).join(', ')})`,
    );
  const wire = ctx.link
    ? relus * ((r.bytes * 8) / ctx.link.bandwidth) + (relus ? reluOps : 0) * r.flights * (ctx.link.rttMs / 2e3)
    : 0;
  return relus * r.compute_s + wire + macs * m.perMac_s + layers * m.perLayer_s + m.perSession_s;
}

/**
 * Estimated online seconds of one inference without a link (a calibrated model's online terms):
 *   relus * perRelu + macs * online.perMac + layers * online.perLayer,
 * `relus` counting kept elements (a partial site: its kept count). Like estimateLatency it has no per-op compute
 * term: each ReLU op also costs a fixed ~0.3-0.5 ms of flights and framing online (docs/pi.md, "Partial ReLU
 * sites"), which site-level models' ops of thousands of ReLUs fold into perRelu.
 */
export function estimateOnline(m: CostModel, relus: number, macs: number, layers: number, relu: string): number {
  const r = m.relu[relu];
  if (!r?.online || !m.online)
    throw new Error(
      `cost model ${m.source}: no online costs for ReLU protocol '${relu}' (calibrate with 'deepreduce pi bench --calibrate FILE')`,
    );
  return relus * r.online.perRelu_s + macs * m.online.perMac_s + layers * m.online.perLayer_s;
}
