// Reports of `pi bench` and the benchmarks (table / JSON) and the cost-model calibration. The models and images they
// run on come from load.ts.
import type { FixedPointOptions } from '../plan.js';
import type { ClientResult, PartyReport, Phase, StatEntry } from '../protocol.js';
import { describeLink, type LinkProfile } from '../transport/shaping.js';
import type { CostModel } from './costmodel.js';
import { table as textTable } from '../../util/table.js';

export interface OpRow {
  op: number;
  name: string;
  kind: string;
  relus: number;
  macs: number;
  offline: { ms: number; cToS: number; sToC: number; rounds: number };
  online: { ms: number; cToS: number; sToC: number; rounds: number };
  /** The server's own compute time for the op online (its linear layers run while the client waits). */
  serverOnlineMs: number;
  /** Dealer traffic for the op (client <-> dealer and dealer -> server), not in the offline/online bytes. */
  prepBytes: number;
  /** Each party's own compute inside the preprocessor for the op (HE encryption / evaluation / decryption), ms. */
  heMs: { client: number; server: number };
}

export interface PiReport {
  plan: { arch: string; relus: number; culledSites: number; macs: number; fixed: FixedPointOptions; digest: string };
  /** The ReLU protocol, the link profile (describeLink: 'no shaping' for none), the linear layers' preprocessing and
   * the transport ('tls' or 'tcp') the session ran under. */
  relu: string;
  link: string;
  preprocess: string;
  transport: string;
  /** Client wall time per phase (it includes waiting for the server), bytes each way, rounds (client flights);
   * `prep`: the dealer's traffic in the phase (both parties' dealer links, both directions). */
  phases: Record<Phase, { ms: number; cToS: number; sToC: number; rounds: number; prep: number }>;
  /** Preprocessing bytes per dealer link and direction, whole session (hellos included). */
  preprocessing: { clientToDealer: number; dealerToClient: number; serverToDealer: number; dealerToServer: number };
  /** The linear layers' offline steps (HE: their traffic is all HE traffic, the public key included): each party's
   * own compute, bytes each way between client and server, the client's wall time. */
  linear: { clientMs: number; serverMs: number; cToS: number; sToC: number; wallMs: number };
  ops: OpRow[];
  logits: number[];
  /** When the offline work ran ('all', 'layer' or the byte budget: the client's wish; the server decides). */
  offline: string;
  /** Each party's peak protocol state held (the server's: zero unless it reports timings), and the peak resident set
   * of each party's process (`rss`: the parties' own processes with `pi bench --processes`; else this one process,
   * both parties together, in `both`). */
  memory: { heldClient: number; heldServer: number; rss: { client?: number; server?: number; both?: number } };
}

/** Per-op rows (client wall time per step; bytes as the client counted them) and phase totals. */
export function piReport(
  r: ClientResult,
  run: { relu: string; link: LinkProfile | null; preprocess: string; transport: string; offline?: string },
): PiReport {
  const rows = new Map<string, OpRow>();
  const z = () => ({ ms: 0, cToS: 0, sToC: 0, rounds: 0 });
  const add = (e: StatEntry) => {
    if (e.phase === 'setup') return;
    const key = `${e.op}:${e.name}`;
    let row = rows.get(key);
    if (!row)
      rows.set(
        key,
        (row = {
          op: e.op,
          name: e.name,
          kind: e.kind,
          relus: e.relus,
          macs: e.macs,
          offline: z(),
          online: z(),
          serverOnlineMs: 0,
          prepBytes: 0,
          heMs: { client: 0, server: 0 },
        }),
      );
    const p = row[e.phase];
    p.ms += e.ms;
    p.cToS += e.bytesSent;
    p.sToC += e.bytesRecv;
    p.rounds += e.rounds;
    row.prepBytes += e.prepSent + e.prepRecv;
    row.heMs.client += e.computeMs ?? 0;
  };
  r.client.entries.forEach(add);
  for (const e of r.server.entries) {
    if (e.phase === 'setup') continue;
    const row = rows.get(`${e.op}:${e.name}`);
    if (!row) continue;
    if (e.phase === 'online') row.serverOnlineMs += e.ms;
    row.prepBytes += e.prepSent + e.prepRecv;
    row.heMs.server += e.computeMs ?? 0;
  }
  const ph = (p: Phase) => {
    const c = r.client.phases[p],
      s = r.server.phases[p];
    return {
      ms: c.ms,
      cToS: c.bytesSent,
      sToC: c.bytesRecv,
      rounds: c.rounds,
      prep: c.prepSent + c.prepRecv + s.prepSent + s.prepRecv,
    };
  };
  const sum = (rep: PartyReport, k: 'prepSent' | 'prepRecv') =>
    (['setup', 'offline', 'online'] as Phase[]).reduce((a, p) => a + rep.phases[p][k], 0);
  const { arch, relus, culledSites, macs, fixed, digest } = r.plan;
  const ops = [...rows.values()],
    lin = ops.filter((o) => o.kind === 'conv' || o.kind === 'fc');
  const total = (f: (o: OpRow) => number) => lin.reduce((a, o) => a + f(o), 0);
  return {
    plan: { arch, relus, culledSites, macs, fixed, digest },
    relu: run.relu,
    link: describeLink(run.link),
    preprocess: run.preprocess,
    transport: run.transport,
    phases: { setup: ph('setup'), offline: ph('offline'), online: ph('online') },
    preprocessing: {
      clientToDealer: sum(r.client, 'prepSent'),
      dealerToClient: sum(r.client, 'prepRecv'),
      serverToDealer: sum(r.server, 'prepSent'),
      dealerToServer: sum(r.server, 'prepRecv'),
    },
    linear: {
      clientMs: total((o) => o.heMs.client),
      serverMs: total((o) => o.heMs.server),
      cToS: total((o) => o.offline.cToS),
      sToC: total((o) => o.offline.sToC),
      wallMs: total((o) => o.offline.ms),
    },
    ops,
    logits: Array.from(r.logits),
    offline: run.offline ?? 'all',
    memory: {
      heldClient: r.client.memory.peakHeldBytes,
      heldServer: r.server.memory.peakHeldBytes,
      rss: {},
    },
  };
}

/** Peak RSS of each party, or of the one process both ran in. */
const rssText = (r: PiReport['memory']['rss']): string =>
  r.client !== undefined || r.server !== undefined
    ? `${r.client !== undefined ? mb(r.client) : '?'}/${r.server !== undefined ? mb(r.server) : '?'}`
    : r.both !== undefined
      ? `${mb(r.both)} (one process)`
      : '';

const mb = (b: number) => (b / 1e6).toFixed(b < 1e5 ? 3 : 1);
const ms = (t: number) => t.toFixed(t < 10 ? 2 : 0);
const blank = (n: number): string[] => Array(n).fill('');

/** The first two columns are names (left-aligned), the rest numbers. */
function table(headers: string[], rows: string[][]): string {
  return textTable(
    headers,
    rows,
    headers.map((_, i) => i >= 2),
  );
}

export function formatPiReport(p: PiReport): string {
  const he = (o: { client: number; server: number }) => (o.client + o.server ? `${ms(o.client)}/${ms(o.server)}` : '');
  const rows = p.ops.map((o) => [
    o.name,
    o.kind,
    o.relus ? o.relus.toLocaleString('en-US') : '',
    o.macs ? (o.macs / 1e6).toFixed(2) : '',
    ms(o.offline.ms),
    mb(o.offline.cToS),
    mb(o.offline.sToC),
    String(o.offline.rounds),
    he(o.heMs),
    o.prepBytes ? mb(o.prepBytes) : '',
    ms(o.online.ms),
    ms(o.serverOnlineMs),
    mb(o.online.cToS),
    mb(o.online.sToC),
    String(o.online.rounds),
  ]);
  const ph = (n: Phase) => p.phases[n];
  for (const n of ['setup', 'offline', 'online'] as Phase[]) {
    rows.push([
      `total ${n}`,
      ...blank(3),
      ms(ph(n).ms),
      mb(ph(n).cToS),
      mb(ph(n).sToC),
      String(ph(n).rounds),
      n === 'offline' ? he({ client: p.linear.clientMs, server: p.linear.serverMs }) : '',
      mb(ph(n).prep),
      ...blank(5),
    ]);
  }
  const head =
    `${p.plan.arch}: ${p.plan.relus.toLocaleString('en-US')} ReLUs (ReLU protocol ${p.relu}), ${p.plan.culledSites} culled sites, ${(p.plan.macs / 1e6).toFixed(1)} M MACs; ` +
    `fixed point Z_2^64, f=${p.plan.fixed.f}, weights <= ${p.plan.fixed.weightFrac} fractional bits; link: ${p.link}`;
  const lin = p.linear;
  const heLine =
    lin.clientMs + lin.serverMs
      ? `linear layers offline: HE compute client ${ms(lin.clientMs)} ms, server ${ms(lin.serverMs)} ms; ` +
        `HE traffic ${mb(lin.cToS)} MB client->server, ${mb(lin.sToC)} MB server->client\n`
      : '';
  const memLine =
    `memory (offline ${p.offline}): protocol state held at the peak client ${mb(p.memory.heldClient)} MB, server ${mb(p.memory.heldServer)} MB` +
    (rssText(p.memory.rss) ? `; peak RSS client/server ${rssText(p.memory.rss)} MB` : '') +
    '\n';
  return `${head}\n${table(['op', 'kind', 'ReLUs', 'MMACs', 'off ms', 'off C>S MB', 'off S>C MB', 'off rnd', 'HE ms c/s', 'dealer MB', 'on ms', 'srv on ms', 'on C>S MB', 'on S>C MB', 'on rnd'], rows)}\n${heLine}${memLine}`;
}

/** One line per report (preprocessing, ReLU protocol, link, transport): total and online time, bytes and flights, side by side. */
export function formatComparison(reps: PiReport[]): string {
  const rows = reps.map((p) => {
    const { setup, offline, online } = p.phases;
    const tot = (x: { cToS: number; sToC: number }) => x.cToS + x.sToC;
    return [
      p.relu,
      p.link,
      p.preprocess,
      p.transport,
      p.offline,
      ms(setup.ms + offline.ms + online.ms),
      ms(offline.ms),
      ms(online.ms),
      mb(tot(setup) + tot(offline) + tot(online)),
      mb(tot(online)),
      String(setup.rounds + offline.rounds + online.rounds),
      String(online.rounds),
      `${mb(p.memory.heldClient)}/${mb(p.memory.heldServer)}`,
      rssText(p.memory.rss),
    ];
  });
  return (
    `${reps[0]!.plan.arch}, ${reps[0]!.plan.relus.toLocaleString('en-US')} ReLUs (client wall time; bytes both ways between client and server):\n` +
    `${table(['relu', 'link', 'prep', 'transport', 'offline', 'total ms', 'offline ms', 'online ms', 'total MB', 'online MB', 'flights', 'online flights', 'held MB c/s', 'peak RSS MB c/s'], rows)}\n`
  );
}

/**
 * Cost-model parameters from measured costs (src/reduce/costmodel.ts), from sessions without link shaping:
 * - the linear layers: each conv/fc op's time t = client offline time + server online time is fitted as
 *   t = perLayer + perMac * MACs over every layer of every session (`linearFit`): the line's shape from the layers'
 *   own HE compute (both parties; the wall times where there is none, e.g. dealer preprocessing), scaled to keep
 *   the sum of t; for small layers the HE work is nearly all per layer (ciphertexts, not MACs: docs/pi.md
 *   "Per-layer cost and fusion");
 * - per ReLU protocol, compute_s = client offline + online time of the ReLU ops, less the server's online linear work
 *   the client waits for inside them, / ReLUs, bytes = their client-server bytes / ReLUs, flights = their online
 *   flights / ReLU ops;
 * - perSession_s = the set-up phase (hello, plan, the ReLU protocol's base OTs), once per session;
 * - the rest of the session (local ops, input, output, waits between steps) / conv/fc layers is added to perLayer.
 * Online terms: per protocol, perRelu_s = the server's online time of the ReLU ops / their ReLUs; online.perMac_s =
 * the server's online conv/fc time / MACs; online.perLayer_s = the rest of the client's online phase / conv/fc layers.
 */
export function calibrate(reports: PiReport[]): CostModel {
  const timed = reports.filter((p) => p.link === describeLink(null));
  if (!timed.length)
    throw new Error('calibration needs a session without link shaping (--link none): shaped times include the link');
  let macT = 0,
    macs = 0,
    restT = 0,
    setupT = 0,
    layers = 0;
  const linT: number[] = [],
    linMacs: number[] = [],
    linHe: number[] = [];
  let onMacT = 0,
    onRestT = 0;
  const relu = new Map<
    string,
    { t: number; relus: number; bytes: number; flights: number; ops: number; online: number }
  >();
  for (const p of timed) {
    let opT = 0,
      onT = 0;
    const r = relu.get(p.relu) ?? { t: 0, relus: 0, bytes: 0, flights: 0, ops: 0, online: 0 };
    for (const o of p.ops) {
      // A max pool's comparisons are ReLUs (its `relus`); its flights (one ReLU op's per level) are not one op's.
      if (o.kind === 'relu' || o.kind === 'maxpool') {
        const t = (o.offline.ms + o.online.ms) / 1e3;
        r.t += t;
        r.relus += o.relus;
        opT += t;
        if (o.kind === 'relu') {
          r.ops++;
          r.flights += o.online.rounds;
        }
        r.bytes += o.offline.cToS + o.offline.sToC + o.online.cToS + o.online.sToC;
        r.online += o.serverOnlineMs / 1e3;
        onT += o.serverOnlineMs / 1e3;
      } else if (o.kind === 'conv' || o.kind === 'fc') {
        macT += (o.offline.ms + o.serverOnlineMs) / 1e3;
        macs += o.macs;
        linT.push((o.offline.ms + o.serverOnlineMs) / 1e3);
        linMacs.push(o.macs);
        linHe.push((o.heMs.client + o.heMs.server) / 1e3);
        layers++;
        opT += o.offline.ms / 1e3;
        r.t -= o.serverOnlineMs / 1e3; // waited for inside the next ReLU op (or the output)
        onMacT += o.serverOnlineMs / 1e3;
        onT += o.serverOnlineMs / 1e3;
      }
    }
    relu.set(p.relu, r);
    setupT += p.phases.setup.ms / 1e3;
    restT += (p.phases.offline.ms + p.phases.online.ms) / 1e3 - opT;
    onRestT += p.phases.online.ms / 1e3 - onT;
  }
  // The line's shape from each layer's own HE compute (both parties measure it per layer; a row's wall time also holds
  // waits for the peer's earlier layers), scaled so that it keeps the rows' total time.
  const heSum = linHe.reduce((a, v) => a + v, 0),
    tSum = linT.reduce((a, v) => a + v, 0);
  const shape = heSum > 0 ? linearFit(linMacs, linHe, heSum / (macs || 1)) : null,
    fit = shape
      ? { intercept: (shape.intercept * tSum) / heSum, slope: (shape.slope * tSum) / heSum }
      : linearFit(linMacs, linT, macs ? macT / macs : 0);
  return {
    perMac_s: fit.slope,
    perLayer_s: fit.intercept + (layers ? Math.max(0, restT) / layers : 0),
    perSession_s: setupT / timed.length,
    online: { perMac_s: macs ? onMacT / macs : 0, perLayer_s: layers ? Math.max(0, onRestT) / layers : 0 },
    relu: Object.fromEntries(
      [...relu]
        .filter(([, r]) => r.relus)
        .map(([k, r]) => [
          k,
          {
            compute_s: Math.max(0, r.t) / r.relus,
            bytes: r.bytes / r.relus,
            flights: r.flights / r.ops,
            online: { perRelu_s: r.online / r.relus },
          },
        ]),
    ),
    source: `deepreduce pi bench, ${new Date().toISOString()}, ${timed.map((r) => `${r.plan.arch}/${r.relu}`).join(', ')}`,
  };
}

/**
 * Least squares t = intercept + slope * x with both terms non-negative (a negative one is set to 0 and the other
 * refitted); fewer than two distinct x: intercept 0 and `ratio` (sum t / sum x). The fitted line keeps the sum of
 * the measured times when both terms are positive, so a calibrated network's estimate is unchanged by the split.
 */
export function linearFit(
  x: readonly number[],
  t: readonly number[],
  ratio: number,
): { intercept: number; slope: number } {
  const n = x.length;
  if (n < 2 || x.every((v) => v === x[0])) return { intercept: 0, slope: ratio };
  const mx = x.reduce((a, b) => a + b, 0) / n,
    mt = t.reduce((a, b) => a + b, 0) / n;
  let sxt = 0,
    sxx = 0;
  for (let i = 0; i < n; i++) {
    sxt += (x[i]! - mx) * (t[i]! - mt);
    sxx += (x[i]! - mx) ** 2;
  }
  const slope = sxt / sxx,
    intercept = mt - slope * mx;
  if (slope < 0) return { intercept: Math.max(0, mt), slope: 0 };
  if (intercept < 0) return { intercept: 0, slope: ratio };
  return { intercept, slope };
}

export type { PartyReport };
