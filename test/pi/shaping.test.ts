import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { connectTcp, listenTcp } from '../../src/pi/node/transport/tcp.js';
import { PiError } from '../../src/pi/transport/errors.js';
import { describeLink, parseLink, parseLinks, shapeChannel, LINK_PROFILES } from '../../src/pi/transport/shaping.js';

test('link profiles: lan, wan, none and BANDWIDTH,RTT; bad specs are named', () => {
  assert.deepEqual(parseLink('lan'), { name: 'lan', bandwidth: 3e9, rttMs: 0.3 });
  assert.deepEqual(parseLink('WAN'), { name: 'wan', bandwidth: 400e6, rttMs: 40 });
  assert.equal(parseLink('none'), null);
  assert.deepEqual(parseLink('3gbit,0.3ms'), { name: '3gbit,0.3ms', bandwidth: 3e9, rttMs: 0.3 });
  assert.deepEqual(parseLink('100mbps, 250us'), { name: '100mbps,250us', bandwidth: 1e8, rttMs: 0.25 });
  assert.equal(describeLink(LINK_PROFILES.wan!), 'wan: 400 Mbit/s, 40 ms RTT');
  assert.deepEqual(
    parseLinks('lan,3gbit,0.3ms,none').map((l) => l?.name ?? null),
    ['lan', '3gbit,0.3ms', null],
  );
  for (const bad of ['fast', '3gbit', '3ghz,1ms', '0gbit,1ms', '1gbit,-1ms'])
    assert.throws(() => parseLink(bad), /link '.*': expected lan, wan, none or BANDWIDTH,RTT/);
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
  const a = shapeChannel(x, link),
    b = shapeChannel(y, link);
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
  const el = performance.now() - t0,
    wire = ((sizes.reduce((s, n) => s + n + 4, 0) * 8) / 80e6) * 1e3 + 10;
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

test("a shaped channel keeps the channel's limits, idle timeout and abort: LIMIT, TIMEOUT, bytes on the link count as buffered", async () => {
  const link = parseLink('80kbit,1ms')!; // 10 bytes per millisecond
  // Frame limit, set on the shaped channel, refused when the prefix arrives.
  const [x1, y1] = channelPair();
  const a1 = shapeChannel(x1, link),
    b1 = shapeChannel(y1, link);
  b1.setLimits({ maxFrameBytes: 100, state: 'in a test' });
  assert.equal(b1.limits.maxFrameBytes, 100);
  a1.send(new Uint8Array(101));
  await assert.rejects(
    b1.recv(),
    (e: PiError) => e.code === 'LIMIT' && /frame of 101 bytes exceeds the limit of 100 bytes in a test/.test(e.message),
  );
  // Bytes on the simulated link and unread count against the buffer limit.
  const [x2, y2] = channelPair();
  const a2 = shapeChannel(x2, link),
    b2 = shapeChannel(y2, link);
  b2.setLimits({ maxBufferedBytes: 150, state: 'in a test' });
  a2.send(new Uint8Array(60));
  a2.send(new Uint8Array(60));
  await new Promise((r) => setImmediate(r));
  assert.equal(b2.memory().bufferedIn, 120, 'two frames on the link');
  a2.send(new Uint8Array(60));
  await assert.rejects(
    b2.recv(),
    (e: PiError) =>
      e.code === 'LIMIT' && /180 bytes received and not read exceed the limit of 150 bytes in a test/.test(e.message),
  );
  // A frame on a slow link is activity: 3,000 bytes take 300 ms against an idle timeout of 100 ms.
  const [x3, y3] = channelPair();
  const a3 = shapeChannel(x3, link),
    b3 = shapeChannel(y3, link);
  b3.setLimits({ idleMs: 100 });
  const t0 = performance.now();
  a3.send(new Uint8Array(3000));
  assert.equal((await b3.recv()).byteLength, 3000);
  assert.ok(performance.now() - t0 >= 290, `${(performance.now() - t0).toFixed(0)} ms`);
  // A silent peer times out.
  await assert.rejects(b3.recv(), (e: PiError) => e.code === 'TIMEOUT' && /idle timeout 0.1 s/.test(e.message));
  // abort() fails the shaped channel's waits and the inner channel's.
  const [x4, y4] = channelPair();
  const b4 = shapeChannel(y4, link);
  const waiting = b4.recv();
  b4.abort(new PiError('TIMEOUT', 'test: deadline'));
  await assert.rejects(waiting, /test: deadline/);
  await assert.rejects(y4.flush(), /test: deadline/);
  for (const c of [a1, b1, a2, b2, a3, b3, b4, x4]) c.close();
});
