// The whole protocol with the OT-based ReLU (--relu ot, the default): results within the local-truncation error of
// the fixed-point reference, culled sites free, frame limits that are the largest messages exactly, the server's
// view padded, faults named on both sides with error codes, a TLS server that survives a client leaving mid-ReLU.
import { CHUNKS_IN_FLIGHT } from '../../src/pi/relu/ot/protocol.js';
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
import {
  PROTOCOL,
  runClient,
  serveClient,
  sessionLimits,
  type PartyReport,
  type SessionHooks,
} from '../../src/pi/protocol.js';
import { servePi } from '../../src/pi/node/serve.js';
import { WorkerPool } from '../../src/pi/node/workers/pool.js';
import { Dealer } from '../../src/pi/node/dealer.js';
import { makePreprocessor } from '../../src/pi/linear/index.js';
import { makeReluProtocol } from '../../src/pi/relu/registry.js';
import type { ReluClient } from '../../src/pi/relu/index.js';
import { channelPair, type Channel } from '../../src/pi/transport/channel.js';
import { connectTls } from '../../src/pi/node/transport/tcp.js';
import { parseErrorFrame, type PiError } from '../../src/pi/wire.js';
import { quantize, r64ToBig } from '../../src/pi/fixed.js';
import { Transcript } from './helpers/transcript.js';
import { bitBalance, byteHistogram, chiSquareTwoSample, chiSquareUniform, CHI2_255_BOUND } from './helpers/stats.js';
import { identity, serverSecurity } from './helpers/tls.js';

manualSeed(7);
const base = specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10 });
const culledSpec: NetSpec = { ...base, mask: cullStages(removeSites(fullMask(base), ['stem.relu']), [1]) };

function model(spec: NetSpec) {
  const net = buildNetwork(spec).eval();
  const nodes = describeNetwork(net);
  const m = compilePlan(net);
  return {
    m,
    dealer: new Dealer(m),
    float: (x: Float32Array) =>
      tidy(() =>
        noGrad(() => runGraph(nodes, tensor(x, [1, spec.inChannels, spec.inputSize, spec.inputSize])).toFloat32()),
      ),
  };
}
const full = model(base),
  culled = model(culledSpec);
after(() => {
  full.m.dispose();
  culled.m.dispose();
});

const image = (seed: number) => Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(seed * 1000 + i * 1.7) * 2);
// Dealer preprocessing keeps these sessions short; the TLS test below runs the defaults (he and ot).
const OT = (relu: string, md: { dealer: Dealer }) => ({ relu, preprocess: 'dealer', dealer: md.dealer.link() });

async function query(
  md: { m: ServerModel; dealer: Dealer },
  x: Float32Array,
  o: { relu?: string; tap?: (s: Channel) => void; hooks?: SessionHooks } = {},
) {
  const [s, c] = channelPair();
  o.tap?.(s);
  const opts = OT(o.relu ?? 'ot', md);
  const [server, client] = await Promise.all([
    serveClient(s, md.m, { ...opts, ...(o.hooks ? { hooks: o.hooks } : {}) }),
    runClient(c, x, opts),
  ]);
  return { server, client };
}

const maxUlps = (a: BigInt64Array, b: BigInt64Array) =>
  Math.max(...Array.from(a, (v, i) => Number(v > b[i]! ? v - b[i]! : b[i]! - v)));
/** Each kept ReLU adds 0 or 1 ULP of 2^-f before the later layers amplify it: a few hundred ULPs of the logits' 2^-26. */
const within = (scale: number) => 2 ** (scale - 8);

/** The server's view of a session: what it received from the client online, labelled by its phase. */
async function onlineView(x: Float32Array, relu = 'ot'): Promise<{ frames: Uint8Array[]; server: PartyReport }> {
  const t = new Transcript();
  const { server } = await query(full, x, { relu, tap: (s) => t.tap(s, 'client'), hooks: t.hooks() });
  return { frames: t.received(['online']).map((f) => f.bytes), server };
}

let firstView: Uint8Array[] = [];

test('full mask over ot: logits within the local-truncation error of the reference, close to float; 6 flights and < 700 B per ReLU', async () => {
  const x = image(1),
    t = new Transcript();
  const { client } = await query(full, x, { tap: (s) => t.tap(s, 'client'), hooks: t.hooks() });
  firstView = t.received(['online']).map((f) => f.bytes);
  const ref = referenceForward(full.m, quantize(x, full.m.plan.fixed.f));
  const d = maxUlps(r64ToBig(client.out), r64ToBig(ref.out));
  assert.ok(d < within(client.scale), `max diff ${d} ULPs`);
  assert.ok(d > 0, 'the local truncation error shows (a bit-exact result would mean the OT path was not taken)');
  full
    .float(x)
    .forEach((v, i) =>
      assert.ok(Math.abs(v - client.logits[i]!) < 0.02, `logit ${i}: float ${v} secure ${client.logits[i]}`),
    );
  const reluOps = client.client.entries.filter((e) => e.phase === 'online' && e.kind === 'relu');
  assert.equal(
    reluOps.reduce((a, e) => a + e.relus, 0),
    full.m.plan.relus,
  );
  // the comparison's 4 flights and the multiplexer's 2 (Λ + 3 for Λ = 3 levels)
  for (const e of reluOps) assert.equal(e.rounds, 6, `${e.name}: ${e.rounds} flights`);
  // Bytes per ReLU, all phases: well under GC's 6,920.
  const bytes = client.client.entries
    .filter((e) => e.kind === 'relu')
    .reduce((a, e) => a + e.bytesSent + e.bytesRecv, 0);
  assert.ok(bytes / full.m.plan.relus < 700, `${(bytes / full.m.plan.relus).toFixed(1)} B per ReLU`);
  // 'ot' keeps its correlations from offline to online (~30 B per ReLU at the client, counted as held state).
  assert.equal(client.client.memory.peakHeldIn, 'offline');
  checkOneAhead(client.client, true);
});

/**
 * The client's offline steps: every linear layer twice (its upload, then its answer), at most one layer ahead, and
 * the ReLU ops after the last answer. `ahead`: every layer's input share is known without an earlier answer (all
 * ReLUs kept), so each upload leaves before the previous layer's answer is read.
 */
function checkOneAhead(r: PartyReport, ahead: boolean): void {
  const off = r.entries.filter((e) => e.phase === 'offline' && e.op >= 0);
  const isLinear = (k: string) => k === 'conv' || k === 'fc';
  const lin = off.filter((e) => isLinear(e.kind)).map((e) => e.op),
    layers = [...new Set(lin)];
  for (const j of layers) assert.equal(lin.filter((x) => x === j).length, 2, `layer ${j}: upload and answer`);
  for (let k = 2; k < layers.length; k++)
    assert.ok(lin.indexOf(layers[k]!) > lin.lastIndexOf(layers[k - 2]!), `layer ${layers[k]} went two ahead`);
  if (ahead)
    for (let k = 1; k < layers.length; k++)
      assert.ok(
        lin.indexOf(layers[k]!) < lin.lastIndexOf(layers[k - 1]!),
        `layer ${layers[k]}'s upload waited for ${layers[k - 1]}'s answer`,
      );
  let lastLinear = -1,
    firstRelu = off.length;
  off.forEach((e, i) => {
    if (isLinear(e.kind)) lastLinear = i;
    else if (e.kind === 'relu') firstRelu = Math.min(firstRelu, i);
  });
  assert.ok(firstRelu > lastLinear, 'the ReLU ops come after the linear layers');
}

test('culled mask over OT: culled sites cost nothing; logits within the error of the reference', async () => {
  const p = culled.m.plan,
    x = image(2);
  const { client } = await query(culled, x);
  for (const e of client.client.entries)
    if (p.ops[e.op]?.op === 'cull') assert.fail(`culled op ${e.name} has protocol traffic`);
  const ref = referenceForward(culled.m, quantize(x, p.fixed.f));
  const d = maxUlps(r64ToBig(client.out), r64ToBig(ref.out));
  assert.ok(d < within(client.scale), `max diff ${d} ULPs`);
  culled
    .float(x)
    .forEach((v, i) =>
      assert.ok(Math.abs(v - client.logits[i]!) < 0.02, `logit ${i}: float ${v} secure ${client.logits[i]}`),
    );
  checkOneAhead(client.client, false);
});

const sitesOf = (m: ServerModel) =>
  m.plan.ops.flatMap((o, i) =>
    o.op === 'relu' ? [{ op: i, name: o.name, size: o.size, width: o.width, shift: o.shift }] : [],
  );
type Phase = 'setup' | 'offline' | 'online';

// Batches of 96 ReLUs cut every site into chunks: a flight of several matrices each way.
for (const [relu, batch] of [
  ['ot', 96],
  ['ot-online', 96],
] as const) {
  test(`${relu} (batch ${batch}): right results; per phase, the largest message each way is the frame limit exactly; the buffer limit covers two flights`, async () => {
    const lim = sessionLimits(full.m.plan, batch, makeReluProtocol(relu), makePreprocessor('dealer'));
    const rl = makeReluProtocol(relu).maxMessageBytes(sitesOf(full.m), { batch });
    const [s, c] = channelPair();
    // Each frame with the phase its receiver was in when it read it.
    const toServer: [Phase, number][] = [],
      toClient: [Phase, number][] = [];
    const phase = { server: 'setup' as Phase | 'hello' | 'done', client: 'setup' as Phase | 'hello' | 'done' };
    const taps = (ch: Channel, into: [Phase, number][], who: 'server' | 'client') => {
      const r = ch.recv.bind(ch);
      ch.recv = async () => {
        const m = await r();
        const p = phase[who];
        if (p !== 'hello' && p !== 'done') into.push([p, m.byteLength]);
        return m;
      };
    };
    taps(s, toServer, 'server');
    taps(c, toClient, 'client');
    const x = image(3),
      opts = { ...OT(relu, full), batch };
    let half: ReluClient | null = null,
      heldAtOnline = -1;
    const hooks: SessionHooks = {
      onRelu: (h) => {
        half = h as ReluClient;
      },
      onPhase: (p) => {
        phase.client = p;
        if (p === 'online') heldAtOnline = half!.heldBytes();
      },
    };
    const [, r] = await Promise.all([
      serveClient(s, full.m, {
        ...opts,
        hooks: {
          onPhase: (p) => {
            phase.server = p;
          },
        },
      }),
      runClient(c, x, { ...opts, hooks }),
    ]);
    const ref = referenceForward(full.m, quantize(x, full.m.plan.fixed.f));
    assert.ok(maxUlps(r64ToBig(r.out), r64ToBig(ref.out)) < within(r.scale));
    // 'ot-online' makes its correlations at each op's online call: nothing offline, one more flight where the
    // server's matrices cannot ride on an earlier message.
    const reluOps = r.client.entries.filter((e) => e.kind === 'relu');
    if (relu === 'ot-online') {
      for (const e of reluOps.filter((e) => e.phase === 'offline'))
        assert.equal(e.bytesSent + e.bytesRecv, 0, `${e.name} offline`);
      // beyond CHUNKS_IN_FLIGHT chunks, each chunk's matrices go out after a receive: two flights more per chunk
      const size = new Map(sitesOf(full.m).map((t) => [t.name, t.size]));
      for (const e of reluOps.filter((e) => e.phase === 'online')) {
        const chunks = Math.ceil(size.get(e.name)! / batch),
          extra = 2 * Math.max(0, chunks - CHUNKS_IN_FLIGHT);
        assert.ok(e.rounds - extra === 6 || e.rounds - extra === 7, `${e.name}: ${e.rounds} flights, ${chunks} chunks`);
      }
    }
    // What the client's ReLU half holds from offline to online: 'ot' its correlations (tens of bytes per ReLU),
    // 'ot-online' nothing.
    if (relu === 'ot')
      assert.ok(
        heldAtOnline > 20 * full.m.plan.relus && heldAtOnline < 60 * full.m.plan.relus,
        `${heldAtOnline} bytes held`,
      );
    else assert.equal(heldAtOnline, 0);
    // Per phase, the ReLU protocol's bound is attained (dealer preprocessing: nothing else on the peer channel but the
    // input share, the output share and the report, online) and every frame is within the phase's limit.
    const input = 8 * full.m.plan.ops[0]!.size;
    for (const p of ['setup', 'offline', 'online'] as const) {
      const ts = toServer.filter(([q, n]) => q === p && n !== input).map(([, n]) => n),
        tc = toClient.filter(([q]) => q === p).map(([, n]) => n);
      assert.equal(Math.max(0, ...ts), rl[p].toServer, `${p}: client -> server`);
      if (rl[p].toClient)
        assert.ok(tc.includes(rl[p].toClient), `${p}: no message of ${rl[p].toClient} bytes to the client`);
      else assert.equal(tc.length, 0, `${p}: messages to the client`);
      for (const [q, n] of toServer) if (q === p) assert.ok(n <= lim[p].toServer, `${p}: ${n} bytes to the server`);
      for (const [q, n] of toClient) if (q === p) assert.ok(n <= lim[p].toClient, `${p}: ${n} bytes to the client`);
      assert.ok(
        lim[p].bufferToServer >= 2 * (rl[p].flightToServer ?? 0) &&
          lim[p].bufferToClient >= 2 * (rl[p].flightToClient ?? 0),
      );
    }
    // The online limit to the server is the OT messages' bound exactly (here above the input share and an error frame).
    assert.ok(rl.online.toServer > Math.max(input, 1024));
    assert.equal(lim.online.toServer, rl.online.toServer);
    assert.equal(lim.offline.toServer, Math.max(rl.offline.toServer, rl.online.toServer));
  });
}

/** A session whose client sends, in place of its first ReLU message of `phase`, `bytes` zero bytes. */
async function oversize(
  phase: 'offline' | 'online',
  bytes: number,
  o: { relu: string; preprocess: string; dealer?: ReturnType<Dealer['link']> },
) {
  const [s, c] = channelPair();
  const send = c.send.bind(c),
    input = 8 * full.m.plan.ops[0]!.size;
  let now = '',
    done = false;
  c.send = (d: Uint8Array) => {
    const swap = !done && now === phase && d.byteLength !== input;
    if (swap) done = true;
    send(swap ? new Uint8Array(bytes) : d);
  };
  const hooks: SessionHooks = {
    onPhase: (p) => {
      now = p;
    },
  };
  const [rs, rc] = await Promise.allSettled([serveClient(s, full.m, o), runClient(c, image(8), { ...o, hooks })]);
  assert.ok(done, `the client sent a ReLU message in the ${phase} phase`);
  assert.equal(rs.status, 'rejected');
  assert.equal(rc.status, 'rejected');
  return {
    server: (rs as PromiseRejectedResult).reason as PiError,
    client: (rc as PromiseRejectedResult).reason as PiError,
  };
}

test("an OT frame one byte above its phase's limit is refused with LIMIT: online (he, the default), offline (dealer)", async () => {
  const sites = sitesOf(full.m);
  // Online, he + ot: the limit is the OT online messages' bound; the client's first comparison flight is replaced.
  const he = sessionLimits(full.m.plan, 16384, makeReluProtocol('ot'), makePreprocessor('he'));
  assert.equal(he.online.toServer, makeReluProtocol('ot').maxMessageBytes(sites, { batch: 16384 }).online.toServer);
  const on = await oversize('online', he.online.toServer + 1, { relu: 'ot', preprocess: 'he' });
  assert.equal(on.server.code, 'LIMIT');
  assert.match(
    on.server.message,
    new RegExp(
      `frame of ${he.online.toServer + 1} bytes exceeds the limit of ${he.online.toServer} bytes in the online phase`,
    ),
  );
  assert.equal(on.client.code, 'LIMIT');
  assert.match(on.client.message, /the server reported LIMIT \(message exceeds the size limit\)/);
  // A frame of exactly the limit passes the limit and is refused by the exact size the receive expects.
  const at = await oversize('online', he.online.toServer, { relu: 'ot', preprocess: 'he' });
  assert.equal(at.server.code, 'MALFORMED');
  // Offline, dealer + ot: the limit is the largest OT matrix (KK13's); the client's first matrix is replaced.
  const dl = sessionLimits(full.m.plan, 16384, makeReluProtocol('ot'), makePreprocessor('dealer'));
  assert.equal(dl.offline.toServer, makeReluProtocol('ot').maxMessageBytes(sites, { batch: 16384 }).offline.toServer);
  const off = await oversize('offline', dl.offline.toServer + 1, OT('ot', full));
  assert.equal(off.server.code, 'LIMIT');
  assert.match(
    off.server.message,
    new RegExp(
      `frame of ${dl.offline.toServer + 1} bytes exceeds the limit of ${dl.offline.toServer} bytes in the offline phase`,
    ),
  );
});

test("the server's online view over OT is uniform and the same for a zero image and another", async () => {
  const views: { frames: Uint8Array[]; server?: PartyReport }[] = [
    { frames: firstView },
    await onlineView(new Float32Array(192)),
  ];
  // The input share, then per ReLU op the client's openings (2 flights), its mux choice corrections, its mux message
  // and re-share.
  const reluOps = views[1]!.server!.entries.filter((e) => e.phase === 'online' && e.kind === 'relu').length;
  for (const v of views) assert.equal(v.frames.length, 1 + 4 * reluOps);
  for (const { frames } of views) {
    const h = byteHistogram(frames),
      n = h.reduce((a, b) => a + b, 0);
    assert.ok(
      n > 20000 && chiSquareUniform(h) < CHI2_255_BOUND,
      `chi2 ${chiSquareUniform(h).toFixed(1)} over ${n} bytes`,
    );
    const bal = bitBalance(h);
    assert.ok(Math.abs(bal.ones - 0.5) < bal.tolerance, `bit balance ${bal.ones}`);
  }
  const chi = chiSquareTwoSample(byteHistogram(views[0]!.frames), byteHistogram(views[1]!.frames));
  assert.ok(chi < CHI2_255_BOUND, `two-sample chi2 ${chi.toFixed(1)}`);
});

test('a truncated online ReLU message over OT gives a clear error on both sides (MALFORMED)', async () => {
  const [s, c] = channelPair();
  // The server's first leaf tables (its first message after the client's input share) lose 4 bytes.
  const recv = s.recv.bind(s),
    send = s.send.bind(s);
  let online = false,
    done = false;
  s.recv = async () => {
    const m = await recv();
    if (m.byteLength === 8 * full.m.plan.ops[0]!.size) online = true;
    return m;
  };
  s.send = (d: Uint8Array) => send(online && !done ? ((done = true), d.subarray(0, d.byteLength - 4)) : d);
  const opts = OT('ot', full);
  const [rs, rc] = await Promise.allSettled([serveClient(s, full.m, opts), runClient(c, image(4), opts)]);
  assert.equal(rc.status, 'rejected');
  assert.equal(rs.status, 'rejected');
  const ce = (rc as PromiseRejectedResult).reason as PiError,
    se = (rs as PromiseRejectedResult).reason as PiError;
  assert.equal(ce.code, 'MALFORMED');
  assert.match(ce.message, /malformed message: online: stem\.relu: comparison flight 1: expected \d+ bytes, got \d+/);
  assert.match(
    se.message,
    /the client reported MALFORMED \(malformed message\) while we waited for online: stem\.relu: comparison flight 2/,
  );
});

test('a hello naming an unknown ReLU protocol is refused with its name; the client hears the code only', async () => {
  const [s, c] = channelPair();
  const srv = serveClient(s, full.m, OT('ot', full));
  c.sendJson({ protocol: PROTOCOL, preprocess: 'dealer', relu: 'nope', session: 'ab'.repeat(16) });
  await assert.rejects(srv, /client hello: unknown ReLU protocol 'nope'; valid: gc, ot, ot-online/);
  const frame = await c.recv();
  assert.equal(parseErrorFrame(frame)?.code, 'PROTOCOL');
  assert.doesNotMatch(new TextDecoder().decode(frame), /nope/);
  // A server pinned to one protocol refuses the other.
  const [s2, c2] = channelPair();
  const srv2 = serveClient(s2, full.m, { relu: 'ot', preprocess: 'dealer', dealer: full.dealer.link() });
  await assert.rejects(
    Promise.all([srv2, runClient(c2, image(1), OT('gc', full))]),
    /ReLU protocol 'gc', this server uses 'ot'|reported PROTOCOL/,
  );
});

test('TLS with the defaults (he, ot): a client that leaves in the middle of a ReLU op does not stop the server; the next clients get right results', async () => {
  const errors: string[] = [];
  let sessions = 0;
  const S = await identity('server');
  const l = await servePi(full.m, {
    port: 0,
    security: serverSecurity(S),
    onError: (e) => errors.push(e.message),
    onSession: () => sessions++,
  });
  try {
    // The quitter closes its socket right after its first online ReLU flight (the comparison's flight 2).
    const q = await connectTls('127.0.0.1', l.port, { pin: S.fingerprint });
    const send = q.send.bind(q),
      inputBytes = 8 * full.m.plan.ops[0]!.size;
    let after = -1;
    q.send = (d: Uint8Array) => {
      send(d);
      if (d.byteLength === inputBytes) after = 0;
      else if (after >= 0 && ++after === 1) q.close();
    };
    await assert.rejects(runClient(q, image(5)), /closed/);
    const xs = [6, 7].map(image);
    const rs = await Promise.all(
      xs.map(async (x) => runClient(await connectTls('127.0.0.1', l.port, { ca: S.cert }), x)),
    );
    rs.forEach((r, i) => {
      const ref = referenceForward(full.m, quantize(xs[i]!, full.m.plan.fixed.f));
      assert.ok(maxUlps(r64ToBig(r.out), r64ToBig(ref.out)) < within(r.scale), `client ${i}`);
      assert.ok(
        r.client.entries.some((e) => e.name === 'ot set-up'),
        'the default ReLU protocol is ot',
      );
    });
    for (let i = 0; i < 50 && errors.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(errors.length, 1, errors.join('; '));
    assert.match(
      errors[0]!,
      /peer closed the connection \(while waiting for online: stem\.relu: comparison flight 4\)/,
    );
    assert.equal(sessions, 2);
  } finally {
    await l.close();
  }
});

test("the server's worker threads (HE groups, KK13 pads) give the same results; two sessions share one pool", async () => {
  // 16x16 input: the first stage's sites have 1,024 ReLUs, so their KK13 batches (8 leaves each) go half to a worker
  const spec = specFor('resnet20', { alpha: 0.25, inputSize: 16, numClasses: 10 });
  const net = buildNetwork(spec).eval(),
    m = compilePlan(net);
  net.dispose();
  const pool = new WorkerPool(1);
  let kk = 0;
  const workers = {
    threads: pool.threads,
    groups: pool.groups.bind(pool),
    kkPlanes: (...a: Parameters<WorkerPool['kkPlanes']>) => {
      kk++;
      return pool.kkPlanes(...a);
    },
  };
  try {
    const xs = [1, 2].map((k) => Float32Array.from({ length: 3 * 256 }, (_, i) => Math.sin(k * 1000 + i * 1.7) * 2));
    const rs = await Promise.all(
      xs.map(async (x) => {
        const [s, c] = channelPair();
        return (await Promise.all([serveClient(s, m, { workers }), runClient(c, x)]))[1];
      }),
    );
    rs.forEach((r, i) => {
      const ref = referenceForward(m, quantize(xs[i]!, m.plan.fixed.f));
      assert.ok(maxUlps(r64ToBig(r.out), r64ToBig(ref.out)) < within(r.scale), `session ${i}`);
    });
    assert.ok(kk >= 2, `${kk} KK13 slices on the worker`);
  } finally {
    await pool.close();
    m.dispose();
  }
});
