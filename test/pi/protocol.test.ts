// The whole protocol with the GC ReLU (--relu gc, named in every session here; protocol-ot.test.ts runs the default ot):
// bit-exact results, culled sites, faults, TLS, limits and memory.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildNetwork,
  cullStages,
  describeNetwork,
  fullMask,
  removeSites,
  runGraph,
  specFor,
  type NetSpec,
} from '../../src/models/index.js';
import { manualSeed, noGrad, tensor, tidy } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import type { ServerModel } from '../../src/pi/plan.js';
import { HELLO_MAX_BYTES, PROTOCOL, runClient, serveClient, sessionLimits } from '../../src/pi/protocol.js';
import { servePi } from '../../src/pi/node/serve.js';
import { linearShapes, makePreprocessor } from '../../src/pi/linear/index.js';
import { HE_PARAMS } from '../../src/pi/he/params.js';
import { makeReluProtocol } from '../../src/pi/relu/registry.js';
import { parseErrorFrame } from '../../src/pi/wire.js';
import type { PiError } from '../../src/pi/transport/errors.js';
import { Dealer, tcpDealerLink } from '../../src/pi/node/dealer.js';
import { channelPair } from '../../src/pi/transport/channel.js';
import { connectTls } from '../../src/pi/node/transport/tcp.js';
import { identity, serverSecurity } from './helpers/tls.js';
import { tapReceived } from './helpers/transcript.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';

manualSeed(7);
const base = specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10 });
const culledSpec: NetSpec = { ...base, mask: cullStages(removeSites(fullMask(base), ['stem.relu']), [1]) };

function model(spec: NetSpec): { m: ServerModel; dealer: Dealer; float: (x: Float32Array) => Float32Array } {
  const net = buildNetwork(spec).eval();
  const nodes = describeNetwork(net);
  const m = compilePlan(net);
  return {
    m,
    // The trusted third party, in process: its own channel pair to each side per session.
    dealer: new Dealer(m, { onError: (e) => dealerErrors.push(e.message) }),
    float: (x) =>
      tidy(() =>
        noGrad(() => runGraph(nodes, tensor(x, [1, spec.inChannels, spec.inputSize, spec.inputSize])).toFloat32()),
      ),
  };
}
const dealerErrors: string[] = [];
const full = model(base),
  culled = model(culledSpec);
after(() => {
  full.m.dispose();
  culled.m.dispose();
});

const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);

async function query(md: { m: ServerModel; dealer: Dealer }, x: Float32Array) {
  const [s, c] = channelPair();
  const [server, client] = await Promise.all([
    serveClient(s, md.m, { dealer: md.dealer.link() }),
    runClient(c, x, { preprocess: 'dealer', relu: 'gc', dealer: md.dealer.link() }),
  ]);
  return { server, client };
}

const ulps = (a: bigint[], b: bigint[]) => Math.max(...a.map((v, i) => Number(v > b[i]! ? v - b[i]! : b[i]! - v)));

test('full mask: secure logits equal the fixed-point reference bit for bit; reference close to float', async () => {
  const x = image(1);
  const { client, server } = await query(full, x);
  const ref = referenceForward(full.m, quantize(x, full.m.plan.fixed.f));
  assert.deepEqual(r64ToBig(client.out), r64ToBig(ref.out));
  const fl = full.float(x);
  fl.forEach((v, i) => assert.ok(Math.abs(v - ref.logits[i]!) < 0.01, `logit ${i}: float ${v} fixed ${ref.logits[i]}`));
  for (const s of ref.reluBits)
    assert.ok(s.bits < s.width - 1, `${s.name}: ${s.bits} bits in a ${s.width}-bit circuit`);
  // per-op accounting on both sides, phases present
  assert.equal(client.client.phases.online.bytesSent, server.phases.online.bytesRecv);
  const relus = client.client.entries
    .filter((e) => e.phase === 'online' && e.kind === 'relu')
    .reduce((a, e) => a + e.relus, 0);
  assert.equal(relus, full.m.plan.relus);
  // The dealer's traffic is counted apart: the client sends each linear layer's input mask and gets M c - s back,
  // the server gets s; nothing of it is in the client-server offline bytes.
  const lin = full.m.plan.ops.map((o, i) => ({ o, i })).filter(({ o }) => o.op === 'conv' || o.op === 'fc');
  const inSum = lin.reduce((a, { o }) => a + 8 * full.m.plan.ops[(o as { input: number }).input]!.size, 0);
  const outSum = lin.reduce((a, { o }) => a + 8 * o.size, 0);
  assert.equal(client.client.phases.offline.prepSent, inSum);
  assert.equal(client.client.phases.offline.prepRecv, outSum);
  assert.equal(server.phases.offline.prepRecv, outSum);
  assert.equal(server.phases.offline.prepSent, 0);
  for (const e of client.client.entries)
    if (e.kind === 'conv' || e.kind === 'fc')
      assert.equal(e.bytesSent + e.bytesRecv, 0, `${e.name}: client-server traffic`);
  assert.deepEqual(dealerErrors, []);
});

test('culled mask: culled sites cost nothing; secure logits within the local-truncation error of the reference', async () => {
  const p = culled.m.plan;
  assert.ok(p.relus < full.m.plan.relus && p.culledSites === 7, `${p.relus} relus, ${p.culledSites} culled`);
  const x = image(2);
  const { client } = await query(culled, x);
  for (const e of client.client.entries)
    if (p.ops[e.op]?.op === 'cull') assert.fail(`culled op ${e.name} has protocol traffic`);
  const ref = referenceForward(culled.m, quantize(x, p.fixed.f));
  const d = ulps(Array.from(r64ToBig(client.out)), Array.from(r64ToBig(ref.out)));
  // +-1 at each local truncation, amplified by the later layers: a few hundred ULPs at 2^-24 of the logits at most.
  assert.ok(d < 2 ** (p.ops[p.ops.length - 1]!.scale - 8), `max diff ${d} ULPs`);
  const fl = culled.float(x);
  fl.forEach((v, i) =>
    assert.ok(Math.abs(v - client.logits[i]!) < 0.02, `logit ${i}: float ${v} secure ${client.logits[i]}`),
  );
});

test('a truncated message gives a clear error on both sides', async () => {
  const [s, c] = channelPair();
  // The server truncates its first garbled-tables message.
  const send = s.send.bind(s);
  let done = false;
  s.send = (d: Uint8Array) => send(!done && d.byteLength > 100000 ? ((done = true), d.subarray(0, 1000)) : d);
  const [rs, rc] = await Promise.allSettled([
    serveClient(s, full.m, { dealer: full.dealer.link() }),
    runClient(c, image(4), { preprocess: 'dealer', relu: 'gc', dealer: full.dealer.link() }),
  ]);
  assert.equal(rc.status, 'rejected');
  assert.equal(rs.status, 'rejected');
  assert.match(
    (rc as PromiseRejectedResult).reason.message,
    /malformed message: offline: stem\.relu: garbled tables: expected \d+ bytes .*got 1000/,
  );
  assert.match((rs as PromiseRejectedResult).reason.message, /the client reported MALFORMED \(malformed message\)/);
});

test('a malformed hello is rejected with the message named, and the peer is told', async () => {
  const [s, c] = channelPair();
  const srv = serveClient(s, full.m);
  c.sendJson({ protocol: 'nope' });
  await assert.rejects(srv, /client speaks protocol 'nope'/);
  // The client hears the code and its generic text only.
  assert.deepEqual(JSON.parse(new TextDecoder().decode(await c.recv())), {
    pi_error: { code: 'PROTOCOL', message: 'unsupported protocol or options', from: 'server' },
  });
});

test('TLS (server and dealer): a client that disconnects mid-protocol stops neither; 4 concurrent clients get right results', async () => {
  const errors: string[] = [],
    dErrors: string[] = [];
  let sessions = 0;
  const [S, D] = await Promise.all([identity('server'), identity('dealer')]);
  const dealer = new Dealer(full.m, { onError: (e) => dErrors.push(e.message), onSession: () => sessions++ });
  const dl = await dealer.listen({ port: 0, tls: { cert: D.cert, key: D.key, clientAuth: { pins: [S.fingerprint] } } });
  const serverLink = tcpDealerLink('127.0.0.1', dl.port, { pin: D.fingerprint, cert: S.cert, key: S.key });
  const clientLink = tcpDealerLink('127.0.0.1', dl.port, { ca: D.cert });
  const l = await servePi(full.m, {
    port: 0,
    security: serverSecurity(S),
    preprocess: 'dealer',
    dealer: serverLink,
    onError: (e) => errors.push(e.message),
  });
  try {
    assert.equal(
      l.server.address() && typeof l.server.address() === 'object'
        ? (l.server.address() as { address: string }).address
        : '',
      '127.0.0.1',
    );
    const quitter = await connectTls('127.0.0.1', l.port, { pin: S.fingerprint });
    quitter.sendJson({ protocol: PROTOCOL, preprocess: 'dealer', relu: 'gc', session: 'ab'.repeat(16) });
    await quitter.recv(); // the plan
    quitter.close();
    const xs = [5, 6, 7, 8].map(image);
    const results = await Promise.all(
      xs.map(async (x) =>
        runClient(await connectTls('127.0.0.1', l.port, { ca: S.cert }), x, {
          preprocess: 'dealer',
          relu: 'gc',
          dealer: clientLink,
        }),
      ),
    );
    results.forEach((r, i) => {
      const ref = referenceForward(full.m, quantize(xs[i]!, full.m.plan.fixed.f));
      assert.deepEqual(r64ToBig(r.out), r64ToBig(ref.out), `client ${i}`);
    });
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /peer closed the connection|closed/);
    assert.equal(sessions, 4);
    // The quitter's server-side dealer connection was dropped as soon as the server left, not at the pairing timeout.
    for (let i = 0; i < 50 && dealer.pending; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(dealer.pending, 0);
    assert.equal(dErrors.length, 1, dErrors.join('; '));
    assert.match(dErrors[0]!, /session (ab)+: the server left before a client joined/);
  } finally {
    await l.close();
    await dl.close();
  }
});

test("the client's own error text never crosses: a NaN pixel at index 37 reaches the server as INTERNAL only", async () => {
  const [s, c] = channelPair();
  const seen = tapReceived(s);
  const x = image(9);
  x[37] = NaN;
  const [rs, rc] = await Promise.allSettled([serveClient(s, full.m), runClient(c, x)]);
  assert.equal(rc.status, 'rejected');
  assert.match((rc as PromiseRejectedResult).reason.message, /client: input: value\[37\] = NaN/);
  assert.equal(rs.status, 'rejected');
  assert.match((rs as PromiseRejectedResult).reason.message, /the client reported INTERNAL \(internal error\)/);
  const last = seen[seen.length - 1]!;
  assert.deepEqual(JSON.parse(new TextDecoder().decode(last)), {
    pi_error: { code: 'INTERNAL', message: 'internal error', from: 'client' },
  });
});

test('frame limits per state: a hello above 4 KiB, then a frame above what the plan implies, fail with LIMIT', async () => {
  const [s, c] = channelPair();
  const srv = serveClient(s, full.m, { dealer: full.dealer.link() });
  c.send(new Uint8Array(HELLO_MAX_BYTES + 1));
  await assert.rejects(
    srv,
    (e: PiError) =>
      e.code === 'LIMIT' && /frame of 4097 bytes exceeds the limit of 4096 bytes before the hello/.test(e.message),
  );
  assert.equal(parseErrorFrame(await c.recv())?.code, 'LIMIT');

  const lim = sessionLimits(full.m.plan, 16384, makeReluProtocol('gc'), makePreprocessor('dealer'));
  assert.ok(
    lim.setup.toServer >= 8 * full.m.plan.ops[0]!.size && lim.setup.toServer < 1 << 20,
    `${lim.setup.toServer} bytes`,
  );
  const [s2, c2] = channelPair();
  const srv2 = serveClient(s2, full.m, { dealer: full.dealer.link() });
  c2.sendJson({ protocol: PROTOCOL, preprocess: 'dealer', relu: 'gc', session: 'ef'.repeat(16) });
  await c2.recv(); // the plan
  c2.send(new Uint8Array(lim.setup.toServer + 1));
  await assert.rejects(
    srv2,
    (e: PiError) =>
      e.code === 'LIMIT' &&
      new RegExp(
        `frame of ${lim.setup.toServer + 1} bytes exceeds the limit of ${lim.setup.toServer} bytes in the setup phase`,
      ).test(e.message),
  );
});

test("frame limits with he: the client's limit is its largest response exactly, the server's the plan's largest upload exactly", async () => {
  const he = makePreprocessor('he'),
    gc = makeReluProtocol('gc');
  const lim = sessionLimits(full.m.plan, 16384, gc, he),
    pl = he.maxMessageBytes(linearShapes(full.m.plan));
  const heFrame = (m: Uint8Array) =>
    m.byteLength >= 16 && new DataView(m.buffer, m.byteOffset).getUint32(0, true) === HE_PARAMS.id;
  const [s, c] = channelPair();
  const toServer = tapReceived(s),
    toClient = tapReceived(c);
  const x = image(11);
  const [, r] = await Promise.all([serveClient(s, full.m), runClient(c, x, { relu: 'gc' })]);
  // within the HE linear layers' error (a carry of +-1 per output, docs/pi-he.md), amplified like local truncation's
  assert.ok(
    ulps(
      Array.from(r64ToBig(r.out)),
      Array.from(r64ToBig(referenceForward(full.m, quantize(x, full.m.plan.fixed.f)).out)),
    ) <
      2 ** (full.m.plan.ops[full.m.plan.ops.length - 1]!.scale - 8),
  );
  const largest = (fs: Uint8Array[]) => Math.max(...fs.filter(heFrame).map((f) => f.byteLength));
  assert.equal(largest(toClient), pl.toClient);
  // a layer's responses come as one flight (the server does not wait between groups): the client's buffer holds two
  const perOp = new Map<number, number>();
  for (const f of toClient.filter(heFrame)) {
    const op = new DataView(f.buffer, f.byteOffset).getUint32(8, true);
    perOp.set(op, (perOp.get(op) ?? 0) + f.byteLength);
  }
  const flight = Math.max(...perOp.values());
  assert.equal(flight, pl.flightToClient);
  assert.ok(lim.offline.bufferToClient >= 2 * flight, `flight ${flight}, buffer ${lim.offline.bufferToClient}`);
  // the server accepts the plan's packings only (docs/pi-he.md): its limit is the largest upload of the session
  assert.ok(
    largest(toServer) === pl.toServer && pl.toServer <= lim.offline.toServer,
    `${largest(toServer)} = ${pl.toServer} <= ${lim.offline.toServer}`,
  );
  for (const f of toServer) assert.ok(f.byteLength <= lim.setup.toServer);
  for (const f of toClient) assert.ok(f.byteLength <= lim.setup.toClient);
  // one byte more than the limit fails the session with LIMIT
  const [s2, c2] = channelPair();
  const srv2 = serveClient(s2, full.m);
  c2.sendJson({ protocol: PROTOCOL, preprocess: 'he', relu: 'gc', session: 'ad'.repeat(16) });
  await c2.recv(); // the plan
  c2.send(new Uint8Array(lim.setup.toServer + 1));
  await assert.rejects(
    srv2,
    (e: PiError) =>
      e.code === 'LIMIT' &&
      new RegExp(
        `frame of ${lim.setup.toServer + 1} bytes exceeds the limit of ${lim.setup.toServer} bytes in the setup phase`,
      ).test(e.message),
  );
});

test('each party reports its memory: peak bytes buffered and the protocol state it held', async () => {
  const { client, server } = await query(full, image(10));
  for (const r of [client.client, server]) {
    assert.ok(r.memory.peakHeldBytes > 100_000, `${r.role}: ${r.memory.peakHeldBytes} bytes held`);
    assert.ok(r.memory.peakBufferedIn > 0, `${r.role}: ${r.memory.peakBufferedIn} bytes buffered`);
  }
  // The client keeps every garbled table from offline to online: its state peaks at the end of the offline phase.
  assert.equal(client.client.memory.peakHeldIn, 'offline');
});
