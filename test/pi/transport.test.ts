import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { channelPair, diffStats, FrameReader, framePrefix, type Channel } from '../../src/pi/transport/channel.js';
import { connectTcp, listenTcp } from '../../src/pi/node/transport/tcp.js';
import type { PiError } from '../../src/pi/transport/errors.js';

function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** A listener whose single connection is handed to the test. */
async function oneServer(opts: { maxFrameBytes?: number } = {}) {
  let accept!: (ch: Channel) => void;
  const got = new Promise<Channel>((r) => (accept = r));
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  const l = await listenTcp({ port: 0, host: '127.0.0.1', ...opts }, async (ch) => {
    accept(ch);
    await hold;
  });
  return { l, got, release };
}

test('in-process pair: messages, counters, rounds, reset', async () => {
  const [a, b] = channelPair();
  a.send(new Uint8Array([1, 2, 3]));
  a.send(new Uint8Array(10));
  assert.deepEqual(await b.recv(), new Uint8Array([1, 2, 3]));
  assert.equal((await b.recv()).length, 10);
  b.sendJson({ x: 1 });
  assert.deepEqual(await a.recvJson('reply'), { x: 1 });
  a.send(new Uint8Array(1));
  await b.recv();
  // a: send,send | recv | send -> 3 flights; b: recv,recv | send | recv -> 3 flights.
  assert.deepEqual(a.stats(), { bytesSent: 14, bytesRecv: 7, msgsSent: 3, msgsRecv: 1, rounds: 3 });
  assert.deepEqual(b.stats(), { bytesSent: 7, bytesRecv: 14, msgsSent: 1, msgsRecv: 3, rounds: 3 });
  const before = a.stats();
  a.send(new Uint8Array(5));
  await b.recv();
  assert.deepEqual(diffStats(a.stats(), before), { bytesSent: 5, bytesRecv: 0, msgsSent: 1, msgsRecv: 0, rounds: 0 });
  const phase = a.resetStats();
  assert.equal(phase.msgsSent, 4);
  assert.deepEqual(a.stats(), { bytesSent: 0, bytesRecv: 0, msgsSent: 0, msgsRecv: 0, rounds: 0 });
});

test('in-process pair: send copies, parts keep alignment, typed helpers check lengths', async () => {
  const [a, b] = channelPair();
  const buf = new Uint8Array([9, 9]);
  a.send(buf);
  buf[0] = 0;
  assert.deepEqual(await b.recv(), new Uint8Array([9, 9]));
  a.sendParts([new Uint8Array([1]), new Uint8Array(new Uint32Array([7, 8]).buffer), new Uint8Array(0)]);
  const parts = await b.recvParts('parts', 3);
  assert.deepEqual(parts[0], new Uint8Array([1]));
  assert.equal(parts[1].byteOffset % 8, 0);
  assert.deepEqual(new Uint32Array(parts[1].buffer, parts[1].byteOffset, 2), new Uint32Array([7, 8]));
  assert.equal(parts[2].length, 0);
  a.sendU32Array(new Uint32Array([1, 2, 3]));
  await assert.rejects(b.recvU32Array('gc labels', 4), /gc labels: expected 16 bytes, got 12/);
  a.send(new TextEncoder().encode('{oops'));
  await assert.rejects(b.recvJson('hello'), /hello: malformed JSON/);
});

test('in-process pair: close rejects the peer and later sends', async () => {
  const [a, b] = channelPair();
  const pending = b.recv();
  a.close();
  await assert.rejects(pending, /peer closed/);
  await assert.rejects(b.recvBytes('layer 3 labels'), /peer closed.*while waiting for layer 3 labels/);
  assert.throws(() => a.send(new Uint8Array(1)), /closed/);
});

test('tcp: framing of large and empty messages, counters on both sides', async () => {
  const { l, got, release } = await oneServer();
  const client = await connectTcp('127.0.0.1', l.port);
  const server = await got;
  const big = new Uint8Array(3_000_001);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255;
  client.send(big);
  client.send(new Uint8Array(0));
  client.sendU32Array(new Uint32Array([0xdeadbeef]));
  const r = await server.recv();
  assert.equal(r.length, big.length);
  assert.deepEqual(r, big);
  assert.equal((await server.recv()).length, 0);
  assert.deepEqual(await server.recvU32Array('word', 1), new Uint32Array([0xdeadbeef]));
  server.send(new Uint8Array(7));
  await client.recvBytes('reply', 7);
  await client.flush();
  assert.deepEqual(client.stats(), { bytesSent: 3_000_005, bytesRecv: 7, msgsSent: 3, msgsRecv: 1, rounds: 2 });
  assert.deepEqual(server.stats(), { bytesSent: 7, bytesRecv: 3_000_005, msgsSent: 1, msgsRecv: 3, rounds: 2 });
  client.close();
  release();
  await l.close();
});

test('tcp: a length prefix above the maximum is a clear error', async () => {
  const { l, got, release } = await oneServer({ maxFrameBytes: 1000 });
  const s = await rawConnect(l.port);
  const server = await got;
  s.write(new Uint8Array([0, 0, 0x10, 0]));
  await assert.rejects(server.recv(), /frame of 4096 bytes exceeds the limit of 1000 bytes/);
  s.destroy();
  release();
  await l.close();
});

test('tcp: a frame cut mid-payload or mid-prefix is a clear error', async () => {
  for (const [bytes, re] of [
    [[0, 0, 0, 100, 1, 2, 3, 4, 5], /truncated frame: connection closed after 5 of 100 payload bytes/],
    [[0, 0], /truncated frame: connection closed after 2 of 4 length-prefix bytes/],
  ] as const) {
    const { l, got, release } = await oneServer();
    const s = await rawConnect(l.port);
    const server = await got;
    const pending = server.recv();
    s.end(new Uint8Array(bytes));
    await assert.rejects(pending, re);
    release();
    await l.close();
  }
});

test('tcp: peer disconnect rejects pending recv; the listener keeps serving', async () => {
  const errors: string[] = [];
  let served = 0;
  const l = await listenTcp({ port: 0, host: '127.0.0.1', onError: (e) => errors.push(e.message) }, async (ch) => {
    const m = await ch.recvBytes('request');
    ch.send(m);
    await ch.recvBytes('second request'); // the first client leaves here
    served++;
  });
  const c1 = await connectTcp('127.0.0.1', l.port);
  c1.send(new Uint8Array([1]));
  await c1.recv();
  c1.close();
  const c2 = await connectTcp('127.0.0.1', l.port);
  c2.send(new Uint8Array([2]));
  assert.deepEqual(await c2.recv(), new Uint8Array([2]));
  c2.send(new Uint8Array([3]));
  await new Promise((r) => setTimeout(r, 50));
  c2.close();
  await l.close();
  assert.equal(served, 1);
  assert.equal(errors.length, 1);
  assert.match(errors[0], /peer closed the connection.*while waiting for second request/);
});

test('tcp: concurrent clients are served independently', async () => {
  const l = await listenTcp({ port: 0, host: '127.0.0.1' }, async (ch) => {
    const id = (await ch.recvBytes('id', 1))[0];
    await new Promise((r) => setTimeout(r, 5 * (4 - id)));
    ch.send(new Uint8Array(1000).fill(id));
    await ch.recvBytes('bye');
  });
  const res = await Promise.all(
    [0, 1, 2, 3].map(async (id) => {
      const ch = await connectTcp('127.0.0.1', l.port);
      ch.send(new Uint8Array([id]));
      const m = await ch.recvBytes('reply', 1000);
      ch.send(new Uint8Array(0));
      ch.close();
      return m.every((x) => x === id);
    }),
  );
  assert.deepEqual(res, [true, true, true, true]);
  await l.close();
});

test('tcp: connecting to a closed port names the address', async () => {
  const l = await listenTcp({ port: 0, host: '127.0.0.1' }, () => {});
  const port = l.port;
  await l.close();
  await assert.rejects(connectTcp('127.0.0.1', port), new RegExp(`connect 127.0.0.1:${port}`));
});

test("in-process pair: a frame above the receiver's limit fails it with LIMIT", async () => {
  const [a, b] = channelPair();
  b.setLimits({ maxFrameBytes: 10, state: 'in a test' });
  a.send(new Uint8Array(10));
  assert.equal((await b.recv()).length, 10);
  a.send(new Uint8Array(11));
  await assert.rejects(
    b.recv(),
    (e: PiError) => e.code === 'LIMIT' && /frame of 11 bytes exceeds the limit of 10 bytes in a test/.test(e.message),
  );
});

test('frame reader: a 1 GiB length prefix costs nothing until bytes arrive; what it holds follows what arrived', () => {
  const frames: Uint8Array[] = [];
  let tooLarge: number[] = [];
  const r = new FrameReader(
    () => 1 << 30,
    (m) => frames.push(m),
    (len, lim) => {
      tooLarge = [len, lim];
    },
  );
  r.push(framePrefix(1 << 30));
  assert.equal(r.held, 0, 'nothing allocated from the prefix alone');
  r.push(new Uint8Array(10));
  assert.ok(r.held <= 1 << 16, `${r.held} bytes held after 10 arrived`);
  // a small view into a large buffer is copied, not retained with its buffer
  r.push(new Uint8Array(1 << 20).subarray(5, 15));
  assert.equal(r.held, 20, 'two 10-byte pieces');
  // A 300 KB frame in 1 KB chunks: the buffer stays within twice what arrived (or the first 64 KiB).
  const r2 = new FrameReader(
    () => 1 << 20,
    (m) => frames.push(m),
    () => assert.fail('within the limit'),
  );
  const body = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255);
  const stream = new Uint8Array(4 + body.length);
  stream.set(framePrefix(body.length));
  stream.set(body, 4);
  for (let o = 0; o < stream.length; o += 1000) {
    r2.push(stream.subarray(o, o + 1000));
    if (frames.length === 0)
      assert.ok(r2.held <= Math.max(1 << 16, 2 * (o + 1000)), `held ${r2.held} after ${o + 1000} bytes`);
  }
  assert.equal(frames.length, 1);
  assert.deepEqual(frames[0], body);
  assert.equal(r2.held, 0);
  // Above the limit: refused when the prefix completes, before any payload.
  const r3 = new FrameReader(
    () => 4096,
    () => assert.fail('no frame'),
    (len, lim) => {
      tooLarge = [len, lim];
    },
  );
  tooLarge = [];
  r3.push(framePrefix(4097).subarray(0, 3));
  assert.deepEqual(tooLarge, []);
  r3.push(framePrefix(4097).subarray(3));
  assert.deepEqual(tooLarge, [4097, 4096]);
});

test('channel limits: too many unread bytes fail with LIMIT; a silent peer fails a waiting recv with TIMEOUT', async () => {
  const [a, b] = channelPair();
  b.setLimits({ maxFrameBytes: 100, maxBufferedBytes: 150, state: 'in a test' });
  a.send(new Uint8Array(60));
  a.send(new Uint8Array(60));
  assert.equal(b.memory().bufferedIn, 120);
  a.send(new Uint8Array(60));
  await assert.rejects(
    b.recv(),
    (e: PiError) =>
      e.code === 'LIMIT' && /180 bytes received and not read exceed the limit of 150 bytes in a test/.test(e.message),
  );
  assert.equal(b.memory().peakIn, 180);

  const [c, d] = channelPair();
  d.setLimits({ idleMs: 150 });
  const t0 = Date.now();
  setTimeout(() => c.send(new Uint8Array(1)), 100); // traffic within the idle time keeps the wait alive
  assert.equal((await d.recv()).length, 1);
  await assert.rejects(
    d.recv(),
    (e: PiError) => e.code === 'TIMEOUT' && /no data from the peer for 0\.\d s \(idle timeout 0\.1 s\)/.test(e.message),
  );
  const dt = Date.now() - t0;
  assert.ok(dt >= 240 && dt < 1500, `idle timeout after ${dt} ms`);
  // abort() fails a pending recv with the caller's error; sending stays possible (for a last error frame).
  const [e, f] = channelPair();
  const pending = f.recv();
  f.abort(new Error('deadline'));
  await assert.rejects(pending, /deadline/);
  f.send(new Uint8Array(2));
  assert.equal((await e.recv()).length, 2);
});
