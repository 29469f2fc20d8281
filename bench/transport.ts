// Loopback throughput of the pi channels over TLS 1.3 and plain TCP, both ends in this process (so CPU time counts
// the sender's encryption and the receiver's decryption): the per-byte cost TLS adds to a session, measured in
// paired rounds (TLS and TCP back to back, medians) because a shared machine drifts.
// Usage: node dist/bench/transport.js [--mb 256] [--frame-kb 1024] [--rounds 5] [--json]
import './lib/help.js';
import { parseArgs } from 'node:util';
import { connectChannel, listenTcp, type ClientSecurity, type StreamChannel } from '../src/pi/node/transport/tcp.js';
import { generateIdentity } from '../src/pi/node/transport/tls.js';

const { values: a } = parseArgs({
  options: {
    mb: { type: 'string', default: '256' },
    'frame-kb': { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean' },
  },
});
const total = Number(a.mb) * 2 ** 20,
  frame = Number(a['frame-kb']) * 1024,
  rounds = Number(a.rounds);
const id = await generateIdentity();

async function once(tls: boolean): Promise<{ wall: number; cpu: number }> {
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const l = await listenTcp(
    {
      port: 0,
      ...(tls ? { tls: { cert: id.cert, key: id.key } } : {}),
      limits: { maxFrameBytes: frame, maxBufferedBytes: 4 * frame },
    },
    async (ch: StreamChannel) => {
      for (let got = 0; got < total; ) got += (await ch.recv()).byteLength;
      ch.send(new Uint8Array(1));
      await ch.flush();
      done();
    },
  );
  const sec: ClientSecurity = tls ? { tls: { pin: id.fingerprint } } : { insecure: true };
  const ch = await connectChannel('127.0.0.1', l.port, sec);
  const payload = new Uint8Array(frame).fill(7);
  const c0 = process.cpuUsage(),
    t0 = performance.now();
  for (let sent = 0; sent < total; sent += frame) {
    ch.send(payload.slice());
    await ch.flush();
  }
  await ch.recv();
  await finished;
  const u = process.cpuUsage(c0),
    wall = (performance.now() - t0) / 1e3;
  ch.close();
  await l.close();
  return { wall, cpu: (u.user + u.system) / 1e6 };
}

const med = (v: number[]) => {
  const s = [...v].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
};
const runs: Record<string, { wall: number; cpu: number }[]> = { tls: [], tcp: [] };
for (let r = 0; r < rounds; r++)
  for (const link of ['tls', 'tcp'] as const) runs[link]!.push(await once(link === 'tls'));
const gb = total / 1e9;
const row = (link: string) => ({
  link,
  GB: +gb.toFixed(3),
  wall_s: +med(runs[link]!.map((x) => x.wall)).toFixed(3),
  cpu_s: +med(runs[link]!.map((x) => x.cpu)).toFixed(3),
  GB_per_s: +(gb / med(runs[link]!.map((x) => x.wall))).toFixed(2),
  cpu_s_per_GB: +(med(runs[link]!.map((x) => x.cpu)) / gb).toFixed(3),
});
const rows = [row('tls'), row('tcp')];
const extra = +(rows[0]!.cpu_s_per_GB - rows[1]!.cpu_s_per_GB).toFixed(3);
if (a.json) console.log(JSON.stringify({ rows, tlsExtraCpuSecondsPerGB: extra }, null, 2));
else {
  console.table(rows);
  console.log(`TLS adds ${extra} CPU s per GB sent (encryption + decryption, one process)`);
}
