// Cost of one kept ReLU site under each ReLU protocol, both parties in this process over an in-process channel pair
// (one thread: times are both parties' work together): bytes per ReLU by phase and direction, flights, and
// microseconds per ReLU offline and online, as wall time and as this process's CPU time (user + system; on a shared
// machine the CPU time is the steadier figure). The site is the plan's usual one (width 45, shift 12: a 32-bit
// comparison for ot and silent). setup_kB: the session set-up's bytes, both ways (base OTs; silent: its IKNP bootstrap
// and bootstrap round), paid once per session, not per ReLU. silent's offline bytes include its LPN rounds as they
// fall due (a round serves ~531K COTs, ~11K ReLUs): use --reps >= 3 and a large --n for the amortized figure.
// Usage: node dist/bench/relu.js [--relu gc,ot,silent] [--n 65536] [--width 45 --shift 12] [--batch 16384]
// [--reps 3] [--json]
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
    relu: { type: 'string', default: 'gc,ot,silent' },
    n: { type: 'string', default: '65536' },
    width: { type: 'string', default: '45' },
    shift: { type: 'string', default: '12' },
    batch: { type: 'string', default: '16384' },
    reps: { type: 'string', default: '3' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  console.log(`Usage: node dist/bench/relu.js [options]
Bytes per ReLU by phase and direction, flights, and us per ReLU (wall and CPU) of one site per rep.
  --relu LIST    ReLU protocols, comma-separated (default gc,ot,silent)
  --n N          ReLUs per site (default 65536)
  --width W      ring width of the site (default 45)
  --shift S      truncation shift (default 12)
  --batch B      ReLUs per OT batch (default 16384)
  --reps R       sites per protocol, the median is reported (default 3)
  --json         print JSON instead of a table`);
  process.exit(0);
}
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
  const setupBytes = s.resetStats().bytesSent + c.resetStats().bytesSent;
  const off: number[] = [],
    on: number[] = [],
    offCpu: number[] = [],
    onCpu: number[] = [];
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e3;
  };
  const sum = { offCS: 0, offSC: 0, onCS: 0, onSC: 0, onFlights: 0 };
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
    sum.offCS += co.bytesSent;
    sum.offSC += so.bytesSent;
    sum.onCS += cn.bytesSent;
    sum.onSC += sn.bytesSent;
    sum.onFlights = cn.rounds;
  }
  s.close();
  // bytes: the mean over the reps (silent's rounds fall due every few sites)
  const per = (v: number) => +(v / (n * reps)).toFixed(1),
    bytes = sum;
  rows.push({
    relu: name,
    n,
    setup_ms: Math.round(setupMs),
    setup_kB: Math.round(setupBytes / 1024),
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
