// One ReLU protocol's cost on sites of n ReLUs, both parties in this process over an in-process channel pair (one
// thread: times are both parties' work together). Shared by bench/relu.ts and bench/peers/run.ts.
import { performance } from 'node:perf_hooks';
import { channelPair } from '../../src/pi/transport/channel.js';
import { makeReluProtocol } from '../../src/pi/relu/registry.js';
import type { ReluSite } from '../../src/pi/relu/index.js';
import { clientRandomness, r64Random, randomR64, serverRandomness, systemRandom } from '../../src/pi/random.js';

export interface ReluCostOptions {
  n: number;
  width: number;
  shift: number;
  batch: number;
  reps: number;
}

export interface ReluCost {
  relu: string;
  n: number;
  setup_ms: number;
  setup_kB: number;
  /** bytes per ReLU by phase and direction (mean over the reps) */
  off_C2S_B: number;
  off_S2C_B: number;
  on_C2S_B: number;
  on_S2C_B: number;
  total_B: number;
  online_flights: number;
  /** microseconds per ReLU, median over the reps: wall and this process's CPU (user + system) */
  offline_us: number;
  online_us: number;
  offline_cpu_us: number;
  online_cpu_us: number;
}

const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};

/** Session set-up once, then `reps` sites of n ReLUs each (offline, then online). */
export async function reluCost(name: string, o: ReluCostOptions): Promise<ReluCost> {
  const { n, width, shift, batch, reps } = o;
  const proto = makeReluProtocol(name);
  const [s, c] = channelPair();
  const t0 = performance.now();
  const [S, C] = await Promise.all([
    proto.server(s, { batch, random: serverRandomness() }),
    proto.client(c, { batch, random: clientRandomness() }),
  ]);
  const setupMs = performance.now() - t0;
  const setupBytes = s.resetStats().bytesSent + c.resetStats().bytesSent;
  const off: number[] = [],
    on: number[] = [],
    offCpu: number[] = [],
    onCpu: number[] = [];
  const sum = { offCS: 0, offSC: 0, onCS: 0, onSC: 0, onFlights: 0 };
  for (let r = 0; r < reps; r++) {
    const site: ReluSite = { op: r, name: `bench.relu${r}`, size: n, width, shift };
    const b = r64Random(n),
      x = r64Random(n);
    s.resetStats();
    c.resetStats();
    let t = performance.now(),
      u = cpuMs();
    await Promise.all([S.offline(site), C.offline(site, b, randomR64(systemRandom, n))]);
    off.push(performance.now() - t);
    offCpu.push(cpuMs() - u);
    const so = s.resetStats(),
      co = c.resetStats();
    t = performance.now();
    u = cpuMs();
    await Promise.all([S.online(site, x), C.online(site)]);
    on.push(performance.now() - t);
    onCpu.push(cpuMs() - u);
    const sn = s.resetStats(),
      cn = c.resetStats();
    sum.offCS += co.bytesSent;
    sum.offSC += so.bytesSent;
    sum.onCS += cn.bytesSent;
    sum.onSC += sn.bytesSent;
    sum.onFlights = cn.rounds;
  }
  s.close();
  // bytes: the mean over the reps (silent's rounds fall due every few sites)
  const per = (v: number) => +(v / (n * reps)).toFixed(1);
  return {
    relu: name,
    n,
    setup_ms: Math.round(setupMs),
    setup_kB: Math.round(setupBytes / 1024),
    off_C2S_B: per(sum.offCS),
    off_S2C_B: per(sum.offSC),
    on_C2S_B: per(sum.onCS),
    on_S2C_B: per(sum.onSC),
    total_B: per(sum.offCS + sum.offSC + sum.onCS + sum.onSC),
    online_flights: sum.onFlights,
    offline_us: +((1e3 * median(off)) / n).toFixed(2),
    online_us: +((1e3 * median(on)) / n).toFixed(2),
    offline_cpu_us: +((1e3 * median(offCpu)) / n).toFixed(2),
    online_cpu_us: +((1e3 * median(onCpu)) / n).toFixed(2),
  };
}
