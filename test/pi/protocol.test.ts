import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, cullStages, describeNetwork, fullMask, removeSites, runGraph, specFor, type NetSpec } from '../../src/models/index.js';
import { manualSeed, noGrad, tensor, tidy } from '../../src/engine/index.js';
import { compilePlan, referenceForward, type ServerModel } from '../../src/pi/plan.js';
import { PROTOCOL, runClient, serveClient, servePi } from '../../src/pi/protocol.js';
import { Dealer, tcpDealerLink } from '../../src/pi/linear/dealer/dealer.js';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { connectTcp } from '../../src/pi/transport/tcp.js';
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
    float: (x) => tidy(() => noGrad(() => runGraph(nodes, tensor(x, [1, spec.inChannels, spec.inputSize, spec.inputSize])).toFloat32())),
  };
}
const dealerErrors: string[] = [];
const full = model(base), culled = model(culledSpec);
after(() => { full.m.dispose(); culled.m.dispose(); });

const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);

async function query(md: { m: ServerModel; dealer: Dealer }, x: Float32Array) {
  const [s, c] = channelPair();
  const [server, client] = await Promise.all([serveClient(s, md.m, { dealer: md.dealer.link() }), runClient(c, x, { preprocess: 'dealer', dealer: md.dealer.link() })]);
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
  for (const s of ref.reluBits) assert.ok(s.bits < s.width - 1, `${s.name}: ${s.bits} bits in a ${s.width}-bit circuit`);
  // per-op accounting on both sides, phases present
  assert.equal(client.client.phases.online.bytesSent, server.phases.online.bytesRecv);
  const relus = client.client.entries.filter((e) => e.phase === 'online' && e.kind === 'relu').reduce((a, e) => a + e.relus, 0);
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
  for (const e of client.client.entries) if (e.kind === 'conv' || e.kind === 'fc') assert.equal(e.bytesSent + e.bytesRecv, 0, `${e.name}: client-server traffic`);
  assert.deepEqual(dealerErrors, []);
});

test('culled mask: culled sites cost nothing; secure logits within the local-truncation error of the reference', async () => {
  const p = culled.m.plan;
  assert.ok(p.relus < full.m.plan.relus && p.culledSites === 7, `${p.relus} relus, ${p.culledSites} culled`);
  const x = image(2);
  const { client } = await query(culled, x);
  for (const e of client.client.entries) if (p.ops[e.op]?.op === 'cull') assert.fail(`culled op ${e.name} has protocol traffic`);
  const ref = referenceForward(culled.m, quantize(x, p.fixed.f));
  const d = ulps(Array.from(r64ToBig(client.out)), Array.from(r64ToBig(ref.out)));
  // +-1 at each local truncation, amplified by the later layers: a few hundred ULPs at 2^-24 of the logits at most.
  assert.ok(d < 2 ** (p.ops[p.ops.length - 1]!.scale - 8), `max diff ${d} ULPs`);
  const fl = culled.float(x);
  fl.forEach((v, i) => assert.ok(Math.abs(v - client.logits[i]!) < 0.02, `logit ${i}: float ${v} secure ${client.logits[i]}`));
});

/** Records what one endpoint receives. */
function tap(ch: Channel, seen: Uint8Array[]): Channel {
  const recv = ch.recv.bind(ch);
  ch.recv = async () => {
    const m = await recv();
    seen.push(m);
    return m;
  };
  return ch;
}

function byteHist(ms: Uint8Array[]): number[] {
  const h = new Array(256).fill(0);
  for (const m of ms) for (const b of m) h[b]++;
  return h;
}

test("the server's online view is masked: uniform bytes, same distribution for different images", async () => {
  const views: Uint8Array[][] = [];
  for (const x of [new Float32Array(192), image(3).map((v) => v * 3)]) {
    const seen: Uint8Array[] = [];
    const [s, c] = channelPair();
    tap(s, seen);
    const [rep] = await Promise.all([serveClient(s, full.m, { dealer: full.dealer.link() }), runClient(c, x, { preprocess: 'dealer', dealer: full.dealer.link() })]);
    // The server receives nothing after the online phase, so its online view is the last messages.
    const online = seen.length - countOnline(rep);
    views.push(seen.slice(online));
  }
  const hists = views.map(byteHist);
  for (const h of hists) {
    const n = h.reduce((a, b) => a + b, 0), e = n / 256;
    const chi = h.reduce((a, o) => a + (o - e) ** 2 / e, 0);
    assert.ok(n > 20000 && chi < 255 + 6 * Math.sqrt(510), `uniformity chi2 ${chi.toFixed(1)} over ${n} bytes`);
    let ones = 0;
    for (let b = 0; b < 256; b++) ones += h[b]! * popcount(b);
    assert.ok(Math.abs(ones / (8 * n) - 0.5) < 0.005, `bit balance ${ones / (8 * n)}`);
  }
  // Two-sample chi-square: the all-zero image and a large one give the same byte distribution.
  const [a, b] = hists as [number[], number[]];
  const na = a.reduce((x, y) => x + y, 0), nb = b.reduce((x, y) => x + y, 0);
  let chi = 0;
  for (let i = 0; i < 256; i++) {
    const t = a[i]! + b[i]!;
    if (t) chi += (Math.sqrt(nb / na) * a[i]! - Math.sqrt(na / nb) * b[i]!) ** 2 / t;
  }
  assert.ok(chi < 255 + 6 * Math.sqrt(510), `two-sample chi2 ${chi.toFixed(1)}`);
});

const popcount = (b: number) => { let c = 0; for (; b; b >>= 1) c += b & 1; return c; };
/** Messages the server receives online: the input share and one colour-bit message per ReLU op. */
const countOnline = (r: { entries: { phase: string; kind: string }[] }) => r.entries.filter((e) => e.phase === 'online' && (e.kind === 'relu' || e.kind === 'input')).length;

test('a truncated message gives a clear error on both sides', async () => {
  const [s, c] = channelPair();
  // The server truncates its first garbled-tables message.
  const send = s.send.bind(s);
  let done = false;
  s.send = (d: Uint8Array) => send(!done && d.byteLength > 100000 ? ((done = true), d.subarray(0, 1000)) : d);
  const [rs, rc] = await Promise.allSettled([serveClient(s, full.m, { dealer: full.dealer.link() }), runClient(c, image(4), { preprocess: 'dealer', dealer: full.dealer.link() })]);
  assert.equal(rc.status, 'rejected');
  assert.equal(rs.status, 'rejected');
  assert.match((rc as PromiseRejectedResult).reason.message, /malformed message: offline: stem\.relu: garbled tables: expected \d+ bytes .*got 1000/);
  assert.match((rs as PromiseRejectedResult).reason.message, /peer reported an error .*client: .*garbled tables/);
});

test('a malformed hello is rejected with the message named, and the peer is told', async () => {
  const [s, c] = channelPair();
  const srv = serveClient(s, full.m);
  c.sendJson({ protocol: 'nope' });
  await assert.rejects(srv, /client speaks protocol 'nope'/);
  assert.match(new TextDecoder().decode(await c.recv()), /pi_error.*protocol 'nope'/);
});

test('TCP (server and dealer): a client that disconnects mid-protocol stops neither; 4 concurrent clients get right results', async () => {
  const errors: string[] = [], dErrors: string[] = [];
  let sessions = 0;
  const dealer = new Dealer(full.m, { onError: (e) => dErrors.push(e.message), onSession: () => sessions++ });
  const dl = await dealer.listen({ port: 0, host: '127.0.0.1' });
  const link = tcpDealerLink('127.0.0.1', dl.port);
  const l = await servePi(full.m, { port: 0, host: '127.0.0.1', dealer: link, onError: (e) => errors.push(e.message) });
  try {
    const quitter = await connectTcp('127.0.0.1', l.port);
    quitter.sendJson({ protocol: PROTOCOL, preprocess: 'dealer', relu: 'gc', session: 'ab'.repeat(16) });
    await quitter.recv(); // the plan
    quitter.close();
    const xs = [5, 6, 7, 8].map(image);
    const results = await Promise.all(xs.map(async (x) => runClient(await connectTcp('127.0.0.1', l.port), x, { preprocess: 'dealer', dealer: link })));
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
