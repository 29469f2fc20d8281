// Secret linear layers through HePreprocessor, client and server in this process (one thread), for bench/he.ts and
// bench/peers/run.ts: one conv from its shape (random 16-bit weights), and a run that checks each result against the
// ring layer and reports wall, CPU, each party's compute and bytes.
import { performance } from 'node:perf_hooks';
import type { LinearShape } from '../../src/pi/linear/index.js';
import { HePreprocessor } from '../../src/pi/linear/he/preprocess.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { r64Sub, r64ToBig } from '../../src/pi/fixed.js';
import { r64Random, systemRandom } from '../../src/pi/random.js';
import { RingConv2d } from '../../src/pi/node/ring.js';
import type { ConvGeometry, RingLinear } from '../../src/pi/ringlinear.js';

/** One conv "C,H,O,k,s,p" (channels in, height = width, channels out, kernel, stride, padding) as op `op`. */
export function convLayer(spec: string, op = 1e6): { shape: LinearShape; layer: RingConv2d } {
  const v = spec.split(',').map(Number);
  if (v.length !== 6 || !v.every((x) => Number.isInteger(x) && x >= 0) || v[0]! < 1 || v[1]! < 1 || v[2]! < 1)
    throw new Error(`a conv layer is C,H,O,k,s,p (integers), got ${spec}`);
  const [C, H, O, k, st, p] = v as [number, number, number, number, number, number];
  const Ho = Math.floor((H + 2 * p - k) / st) + 1;
  const geom: ConvGeometry = {
    inShape: [C, H, H],
    outShape: [O, Ho, Ho],
    kernel: k,
    stride: st,
    padding: p,
    dilation: 1,
    groups: 1,
  };
  let seed = 1;
  const w = Float64Array.from(
    { length: O * C * k * k },
    () => Math.floor(((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296) * 65535) - 32767,
  );
  return {
    shape: { op, name: `conv ${spec}`, inSize: C * H * H, outSize: O * Ho * Ho, geom, maxWeight: 2 ** 15 - 1 },
    layer: new RingConv2d('layer', w, geom),
  };
}

export interface HeLayerRow {
  layer: string;
  wall_ms: number;
  cpu_ms: number;
  server_ms: number;
  client_ms: number;
  MB: number;
}
export interface HeRun {
  rows: HeLayerRow[];
  wallS: number;
  /** process CPU of both parties, the checks against the ring layers excluded */
  cpuS: number;
  serverS: number;
  clientS: number;
  /** bytes both ways, in MB (10^6) */
  MB: number;
}

/** Every shape through HePreprocessor; throws if a result differs from the ring layer by more than a carry. */
export async function heRun(shapes: LinearShape[], layers: Map<number, RingLinear>): Promise<HeRun> {
  const [sc, cc] = channelPair();
  const srv = new HePreprocessor(),
    cli = new HePreprocessor();
  const cpu0 = process.cpuUsage(),
    t00 = performance.now();
  let serverMs = 0,
    clientMs = 0,
    bytes = 0,
    checkUs = 0;
  const rows: HeLayerRow[] = [];
  for (const s of shapes) {
    const c = r64Random(s.inSize),
      layer = layers.get(s.op)!;
    const b0 = cc.stats(),
      t0 = performance.now(),
      u0 = process.cpuUsage();
    const [sv, y] = await Promise.all([
      srv.server({ peer: sc, dealer: null, random: systemRandom }, s, layer),
      cli.client({ peer: cc, dealer: null, random: systemRandom }, s, c),
    ]);
    const u = process.cpuUsage(u0),
      b = cc.stats(),
      k0 = process.cpuUsage();
    const want = r64ToBig(r64Sub(layer.apply(c), sv)),
      got = r64ToBig(y);
    // equal up to the linear layers' error: a carry in {-1, 0, 1} per output (docs/pi-he.md)
    if (!want.every((v, i) => BigInt.asIntN(64, got[i]! - v) >= -1n && BigInt.asIntN(64, got[i]! - v) <= 1n))
      throw new Error(`${s.name}: HE result differs from the ring layer by more than a carry`);
    const k = process.cpuUsage(k0);
    checkUs += k.user + k.system;
    serverMs += srv.lastComputeMs();
    clientMs += cli.lastComputeMs();
    const mb = (b.bytesSent - b0.bytesSent + b.bytesRecv - b0.bytesRecv) / 1e6;
    bytes += mb;
    rows.push({
      layer: s.name,
      wall_ms: Math.round(performance.now() - t0),
      cpu_ms: Math.round((u.user + u.system) / 1e3),
      server_ms: Math.round(srv.lastComputeMs()),
      client_ms: Math.round(cli.lastComputeMs()),
      MB: +mb.toFixed(2),
    });
  }
  sc.close();
  const cpu = process.cpuUsage(cpu0);
  return {
    rows,
    wallS: (performance.now() - t00) / 1e3,
    cpuS: (cpu.user + cpu.system - checkUs) / 1e6,
    serverS: serverMs / 1e3,
    clientS: clientMs / 1e3,
    MB: bytes,
  };
}
