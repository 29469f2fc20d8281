import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { connectTcp, listenTcp } from '../../src/pi/transport/tcp.js';
import { describeLink, parseLink, parseLinks, shapeChannel, LINK_PROFILES } from '../../src/pi/transport/shaping.js';

test('link profiles: lan, wan, none and BANDWIDTH,RTT; bad specs are named', () => {
  assert.deepEqual(parseLink('lan'), { name: 'lan', bandwidth: 3e9, rttMs: 0.3 });
  assert.deepEqual(parseLink('WAN'), { name: 'wan', bandwidth: 400e6, rttMs: 40 });
  assert.equal(parseLink('none'), null);
  assert.deepEqual(parseLink('3gbit,0.3ms'), { name: '3gbit,0.3ms', bandwidth: 3e9, rttMs: 0.3 });
  assert.deepEqual(parseLink('100mbps, 250us'), { name: '100mbps,250us', bandwidth: 1e8, rttMs: 0.25 });
  assert.equal(describeLink(LINK_PROFILES.wan!), 'wan: 400 Mbit/s, 40 ms RTT');
  assert.deepEqual(parseLinks('lan,3gbit,0.3ms,none').map((l) => l?.name ?? null), ['lan', '3gbit,0.3ms', null]);
  for (const bad of ['fast', '3gbit', '3ghz,1ms', '0gbit,1ms', '1gbit,-1ms']) assert.throws(() => parseLink(bad), /link '.*': expected lan, wan, none or BANDWIDTH,RTT/);
});

async function pingPong(a: Channel, b: Channel, bytes: number): Promise<number> {
  const t0 = performance.now();
  a.send(new Uint8Array(bytes));
  const m = await b.recv();
  b.send(m.subarray(0, 1));
  await a.recv();
  return performance.now() - t0;
}

test('a shaped pair: a round trip costs the RTT, a large message its serialisation time; order is kept', async () => {
  const link = parseLink('80mbit,20ms')!;
  const [x, y] = channelPair();
  const a = shapeChannel(x, link), b = shapeChannel(y, link);
  const small = await pingPong(a, b, 10);
  assert.ok(small >= 20 && small < 200, `round trip ${small.toFixed(1)} ms`);
  const big = await pingPong(a, b, 1_000_000); // 100 ms on the wire + 20 ms RTT
  assert.ok(big >= 120 && big < 600, `1 MB round trip ${big.toFixed(1)} ms`);
  // Back-to-back sends queue behind each other on the link and arrive in order.
  const t0 = performance.now();
  const sizes = [200_000, 10, 100_000, 1, 50_000];
  sizes.forEach((n, i) => a.send(new Uint8Array(n).fill(i)));
  for (let i = 0; i < sizes.length; i++) {
    const m = await b.recv();
    assert.equal(m.byteLength, sizes[i]);
    assert.equal(m[0], i);
  }
  const el = performance.now() - t0, wire = ((sizes.reduce((s, n) => s + n + 4, 0) * 8) / 80e6) * 1e3 + 10;
  assert.ok(el >= wire - 1 && el < 3 * wire + 100, `${el.toFixed(1)} ms for ${wire.toFixed(1)} ms of link time`);
  assert.equal(a.stats().bytesSent, 10 + 1_000_000 + sizes.reduce((s, n) => s + n, 0));
  // flush waits for the queue; close delivers what is queued first.
  a.send(new Uint8Array(100_000));
  await a.flush();
  a.send(Uint8Array.of(7));
  a.close();
  assert.equal((await b.recv()).byteLength, 100_000);
  assert.deepEqual(await b.recv(), Uint8Array.of(7));
  await assert.rejects(b.recv(), /peer closed the connection/);
});

test('shaping over TCP, both directions', async () => {
  const link = parseLink('1gbit,10ms')!;
  const l = await listenTcp({ port: 0, host: '127.0.0.1' }, async (ch) => {
    const server = shapeChannel(ch, link);
    server.send(await server.recv());
    await server.flush();
    await server.recv().catch(() => {});
  });
  const c = shapeChannel(await connectTcp('127.0.0.1', l.port), link);
  try {
    const t0 = performance.now();
    c.send(new Uint8Array(1000));
    assert.equal((await c.recv()).byteLength, 1000);
    const rt = performance.now() - t0;
    // 10 ms each way in all: RTT/2 per direction, shaped by each end.
    assert.ok(rt >= 10 && rt < 200, `TCP round trip ${rt.toFixed(1)} ms`);
  } finally {
    c.close();
    await l.close();
  }
});
