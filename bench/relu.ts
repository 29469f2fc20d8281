// Cost of one kept ReLU site under each ReLU protocol, both parties in this process over an in-process channel pair
// (one thread: times are both parties' work together): bytes per ReLU by phase and direction, flights, and
// microseconds per ReLU offline and online, as wall time and as this process's CPU time (user + system; on a shared
// machine the CPU time is the steadier figure). The site is the plan's usual one (width 45, shift 12: a 32-bit
// comparison for ot). Usage: node dist/bench/relu.js [--relu gc,ot] [--n 65536] [--width 45 --shift 12]
// [--batch 16384] [--reps 3] [--json]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { channelPair } from '../src/pi/transport/channel.js';
import { makeReluProtocol } from '../src/pi/relu/registry.js';
import { r64Random } from '../src/pi/random.js';
import type { ReluSite } from '../src/pi/relu/index.js';
import { clientRandomness, randomR64, serverRandomness, systemRandom } from '../src/pi/random.js';

const { values: a } = parseArgs({
  options: {
    relu: { type: 'string', default: 'gc,ot' },
    n: { type: 'string', default: '65536' },
    width: { type: 'string', default: '45' },
    shift: { type: 'string', default: '12' },
    batch: { type: 'string', default: '16384' },
    reps: { type: 'string', default: '3' },
    json: { type: 'boolean' },
  },
});
const n = Number(a.n),
  width = Number(a.width),
  shift = Number(a.shift),
  batch = Number(a.batch),
  reps = Number(a.reps);
for (const [k, v] of Object.entries({ n, width, shift, batch, reps }))
  if (!Number.isInteger(v) || v < (k === 'shift' ? 0 : 1))
    throw new Error(`--${k} must be a positive integer, got ${v}`);

const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
const rows = [];
for (const name of a.relu!.split(',')) {
  const proto = makeReluProtocol(name);
  const [s, c] = channelPair();
  const t0 = performance.now();
  const [S, C] = await Promise.all([
    proto.server(s, { batch, random: serverRandomness() }),
    proto.client(c, { batch, random: clientRandomness() }),
  ]);
  const setupMs = performance.now() - t0;
  const off: number[] = [],
    on: number[] = [],
    offCpu: number[] = [],
    onCpu: number[] = [];
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e3;
  };
  let bytes = { offCS: 0, offSC: 0, onCS: 0, onSC: 0, onFlights: 0 };
  for (let r = 0; r < reps; r++) {
    const site: ReluSite = { op: r, name: `bench.relu${r}`, size: n, width, shift };
    const b = r64Random(n),
      x = r64Random(n);
    s.resetStats();
    c.resetStats();
    let t = performance.now(),
      u = cpu();
    await Promise.all([S.offline(site), C.offline(site, b, randomR64(systemRandom, n))]);
    off.push(performance.now() - t);
    offCpu.push(cpu() - u);
    const so = s.resetStats(),
      co = c.resetStats();
    t = performance.now();
    u = cpu();
    await Promise.all([S.online(site, x), C.online(site)]);
    on.push(performance.now() - t);
    onCpu.push(cpu() - u);
    const sn = s.resetStats(),
      cn = c.resetStats();
    bytes = { offCS: co.bytesSent, offSC: so.bytesSent, onCS: cn.bytesSent, onSC: sn.bytesSent, onFlights: cn.rounds };
  }
  s.close();
  const per = (v: number) => +(v / n).toFixed(1);
  rows.push({
    relu: name,
    n,
    setup_ms: Math.round(setupMs),
    off_C2S_B: per(bytes.offCS),
    off_S2C_B: per(bytes.offSC),
    on_C2S_B: per(bytes.onCS),
    on_S2C_B: per(bytes.onSC),
    total_B: per(bytes.offCS + bytes.offSC + bytes.onCS + bytes.onSC),
    online_flights: bytes.onFlights,
    offline_us: +((1e3 * median(off)) / n).toFixed(2),
    online_us: +((1e3 * median(on)) / n).toFixed(2),
    offline_cpu_us: +((1e3 * median(offCpu)) / n).toFixed(2),
    online_cpu_us: +((1e3 * median(onCpu)) / n).toFixed(2),
  });
}
if (a.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
else console.table(rows);
