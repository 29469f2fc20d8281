// The whole protocol with the OT-based ReLU (--relu ot): results within the local-truncation error of the fixed-point
// reference, culled sites free, the server's view padded, faults named on both sides, a TCP server that survives a
// client leaving mid-ReLU.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, cullStages, describeNetwork, fullMask, removeSites, runGraph, specFor, type NetSpec } from '../../src/models/index.js';
import { manualSeed, noGrad, tensor, tidy } from '../../src/engine/index.js';
import { compilePlan, referenceForward, type ServerModel } from '../../src/pi/plan.js';
import { runClient, serveClient, servePi } from '../../src/pi/protocol.js';
import { Dealer, tcpDealerLink } from '../../src/pi/linear/dealer/dealer.js';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { connectTcp } from '../../src/pi/transport/tcp.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';
import { byteHistogram, chi2TwoSample, chi2Uniform, CHI2_255_BOUND, onesFraction, Transcript } from './transcript.js';

manualSeed(7);
const base = specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10 });
const culledSpec: NetSpec = { ...base, mask: cullStages(removeSites(fullMask(base), ['stem.relu']), [1]) };

function model(spec: NetSpec) {
  const net = buildNetwork(spec).eval();
  const nodes = describeNetwork(net);
  const m = compilePlan(net);
  return {
    m, dealer: new Dealer(m),
    float: (x: Float32Array) => tidy(() => noGrad(() => runGraph(nodes, tensor(x, [1, spec.inChannels, spec.inputSize, spec.inputSize])).toFloat32())),
  };
}
const full = model(base), culled = model(culledSpec);
after(() => { full.m.dispose(); culled.m.dispose(); });

const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);
const OT = { relu: 'ot' } as const;

async function query(md: { m: ServerModel; dealer: Dealer }, x: Float32Array, tap?: (s: Channel) => void) {
  const [s, c] = channelPair();
  tap?.(s);
  const [server, client] = await Promise.all([serveClient(s, md.m, { dealer: md.dealer.link(), ...OT }), runClient(c, x, { dealer: md.dealer.link(), ...OT })]);
  return { server, client };
}

const maxUlps = (a: BigInt64Array, b: BigInt64Array) => Math.max(...Array.from(a, (v, i) => Number(v > b[i]! ? v - b[i]! : b[i]! - v)));
/** Each kept ReLU adds 0 or 1 ULP of 2^-f before the later layers amplify it: a few hundred ULPs of the logits' 2^-26. */
const within = (scale: number) => 2 ** (scale - 8);

let onlineView: Uint8Array[] = [];

test('full mask over OT: logits within the local-truncation error of the reference, close to float; ReLU ops take 6 flights', async () => {
  const x = image(1);
  let tr!: Transcript;
  const { client, server } = await query(full, x, (s) => { tr = new Transcript(s); });
  onlineView = tr.frames.slice(tr.frames.length - countOnline(server)).map((f) => f.bytes);
  const ref = referenceForward(full.m, quantize(x, full.m.plan.fixed.f));
  const d = maxUlps(r64ToBig(client.out), r64ToBig(ref.out));
  assert.ok(d < within(client.scale), `max diff ${d} ULPs`);
  assert.ok(d > 0, 'the local truncation error shows (a bit-exact result would mean the OT path was not taken)');
  full.float(x).forEach((v, i) => assert.ok(Math.abs(v - client.logits[i]!) < 0.02, `logit ${i}: float ${v} secure ${client.logits[i]}`));
  const reluOps = client.client.entries.filter((e) => e.phase === 'online' && e.kind === 'relu');
  assert.equal(reluOps.reduce((a, e) => a + e.relus, 0), full.m.plan.relus);
  for (const e of reluOps) assert.equal(e.rounds, 6, `${e.name}: ${e.rounds} flights`);
  // Bytes per ReLU, all phases: well under GC's 6,920.
  const relu = client.client.entries.filter((e) => e.kind === 'relu').reduce((a, e) => a + e.bytesSent + e.bytesRecv, 0);
  assert.ok(relu / full.m.plan.relus < 700, `${(relu / full.m.plan.relus).toFixed(1)} B per ReLU`);
});

/** Messages the server receives online: the input share and, per ReLU op, the client's 4 messages. */
const countOnline = (r: { entries: { phase: string; kind: string }[] }) =>
  r.entries.filter((e) => e.phase === 'online' && e.kind === 'input').length + 4 * r.entries.filter((e) => e.phase === 'online' && e.kind === 'relu').length;

test('culled mask over OT: culled sites cost nothing; logits within the error of the reference', async () => {
  const p = culled.m.plan, x = image(2);
  const { client } = await query(culled, x);
  for (const e of client.client.entries) if (p.ops[e.op]?.op === 'cull') assert.fail(`culled op ${e.name} has protocol traffic`);
  const ref = referenceForward(culled.m, quantize(x, p.fixed.f));
  const d = maxUlps(r64ToBig(client.out), r64ToBig(ref.out));
  assert.ok(d < within(client.scale), `max diff ${d} ULPs`);
  culled.float(x).forEach((v, i) => assert.ok(Math.abs(v - client.logits[i]!) < 0.02, `logit ${i}: float ${v} secure ${client.logits[i]}`));
});

test("the server's online view over OT is uniform and the same for a zero image and another", async () => {
  let tr!: Transcript;
  const { server } = await query(full, new Float32Array(192), (s) => { tr = new Transcript(s); });
  const zeroView = tr.frames.slice(tr.frames.length - countOnline(server)).map((f) => f.bytes);
  for (const v of [onlineView, zeroView]) {
    const h = byteHistogram(v), n = h.reduce((a, b) => a + b, 0);
    assert.ok(n > 20000 && chi2Uniform(h) < CHI2_255_BOUND, `chi2 ${chi2Uniform(h).toFixed(1)} over ${n} bytes`);
    assert.ok(Math.abs(onesFraction(v) - 0.5) < 0.005, `bit balance ${onesFraction(v)}`);
  }
  const chi = chi2TwoSample(byteHistogram(onlineView), byteHistogram(zeroView));
  assert.ok(chi < CHI2_255_BOUND, `two-sample chi2 ${chi.toFixed(1)}`);
});

test('a truncated online ReLU message over OT gives a clear error on both sides', async () => {
  const [s, c] = channelPair();
  // The server's first leaf tables (its first message after the client's input share) lose 4 bytes.
  const recv = s.recv.bind(s), send = s.send.bind(s);
  let online = false, done = false;
  s.recv = async () => { const m = await recv(); if (m.byteLength === 8 * full.m.plan.ops[0]!.size) online = true; return m; };
  s.send = (d: Uint8Array) => send(online && !done ? ((done = true), d.subarray(0, d.byteLength - 4)) : d);
  const [rs, rc] = await Promise.allSettled([serveClient(s, full.m, { dealer: full.dealer.link(), ...OT }), runClient(c, image(4), { dealer: full.dealer.link(), ...OT })]);
  assert.equal(rc.status, 'rejected');
  assert.equal(rs.status, 'rejected');
  assert.match((rc as PromiseRejectedResult).reason.message, /malformed message: online: stem\.relu: comparison flight 1: expected \d+ bytes, got \d+/);
  assert.match((rs as PromiseRejectedResult).reason.message, /peer reported an error .*client: .*comparison flight 1/);
});

test('a hello naming an unknown ReLU protocol is refused with its name', async () => {
  const [s, c] = channelPair();
  const srv = serveClient(s, full.m, OT);
  c.sendJson({ protocol: 'deepreduce-pi/3', preprocess: 'dealer', relu: 'nope', session: 'ab'.repeat(16) });
  await assert.rejects(srv, /unknown ReLU protocol 'nope'; valid: gc, ot/);
  assert.match(new TextDecoder().decode(await c.recv()), /pi_error.*unknown ReLU protocol 'nope'/);
});

test('TCP: a client that leaves in the middle of a ReLU op does not stop the server; the next clients get right results', async () => {
  const errors: string[] = [];
  let sessions = 0;
  const dealer = new Dealer(full.m, { onError: () => {} });
  const dl = await dealer.listen({ port: 0, host: '127.0.0.1' });
  const link = tcpDealerLink('127.0.0.1', dl.port);
  const l = await servePi(full.m, { port: 0, host: '127.0.0.1', dealer: link, ...OT, onError: (e) => errors.push(e.message), onSession: () => sessions++ });
  try {
    // The quitter closes its socket right after its first online ReLU flight (the comparison's flight 2).
    const q = await connectTcp('127.0.0.1', l.port);
    const send = q.send.bind(q), inputBytes = 8 * full.m.plan.ops[0]!.size;
    let after = -1;
    q.send = (d: Uint8Array) => {
      send(d);
      if (d.byteLength === inputBytes) after = 0;
      else if (after >= 0 && ++after === 1) q.close();
    };
    await assert.rejects(runClient(q, image(5), { dealer: link, ...OT }), /closed/);
    const xs = [6, 7].map(image);
    const rs = await Promise.all(xs.map(async (x) => runClient(await connectTcp('127.0.0.1', l.port), x, { dealer: link, ...OT })));
    rs.forEach((r, i) => {
      const ref = referenceForward(full.m, quantize(xs[i]!, full.m.plan.fixed.f));
      assert.ok(maxUlps(r64ToBig(r.out), r64ToBig(ref.out)) < within(r.scale), `client ${i}`);
    });
    for (let i = 0; i < 50 && errors.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(errors.length, 1, errors.join('; '));
    assert.match(errors[0]!, /online: stem\.relu: comparison flight 3|peer closed the connection/);
    assert.equal(sessions, 2);
  } finally {
    await l.close();
    await dl.close();
  }
});
