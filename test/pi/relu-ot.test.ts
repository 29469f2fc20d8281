import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channelPair } from '../../src/pi/transport/channel.js';
import { CHUNKS_IN_FLIGHT, otOnlineRelu, otRelu, silentRelu, siteShape } from '../../src/pi/relu/ot/protocol.js';
import type { ReluSite } from '../../src/pi/relu/index.js';
import { r64Add, r64FromBig, r64Shr, r64ToBig, r64ToBytes, truncClientShare, type R64 } from '../../src/pi/fixed.js';
import { leakedWords, secretWords, Transcript } from './helpers/transcript.js';
import { bitBalance, byteHistogram, chiSquareTwoSample, chiSquareUniform, CHI2_255_BOUND } from './helpers/stats.js';
import { clientRandomness, randomR64, serverRandomness, systemRandom } from '../../src/pi/random.js';
import { reluShiftClear } from '../../src/pi/plan.js';
import { EDGES, reluHarness, reluInputs } from './helpers/relusite.js';
import { randBig } from './helpers.js';

/** The client's output share of a site (the session draws it in a full run). */
const mask = (site: ReluSite): R64 => randomR64(systemRandom, site.size);
const opts = (batch: number) => ({
  server: { batch, random: serverRandomness() },
  client: { batch, random: clientRandomness() },
});

const inputs = reluInputs;
const { session, runSite, nextOp } = reluHarness(otRelu);

test("ReLU by OT: y = ReLU(a' + b') exactly, within [0, +1] ULP of ReLU(x) >> shift, at the range edges; several widths, chunked offline", async () => {
  // (45, 12): the plan's sites (32-bit comparison, 3 levels); (64, 0): 63 bits, 4 levels (the server ends the
  // comparison); (14, 12): 1 bit, no AND level; (20, 0): no truncation.
  for (const [width, shift, batch] of [
    [45, 12, 16384],
    [45, 12, 64],
    [64, 0, 16384],
    [14, 12, 64],
    [20, 0, 16384],
    [33, 5, 16384],
  ] as const) {
    const { x, a, b } = inputs(width, shift, 300);
    const site: ReluSite = { op: 1, name: 'stage1.block0.relu1', size: x.length, width, shift };
    const { y } = await runSite(site, a, b, batch);
    const got = r64ToBig(y);
    const exact = r64ToBig(reluShiftClear(r64FromBig(x), shift));
    const xt = r64ToBig(r64Add(r64Shr(a, shift), truncClientShare(b, shift)));
    x.forEach((v, i) => {
      const t = xt[i]!;
      assert.equal(got[i], t > 0n ? t : 0n, `w=${width} s=${shift}: x=${v}: ReLU of the truncated shares`);
      const d = got[i]! - exact[i]!;
      assert.ok(d === 0n || d === 1n, `w=${width} s=${shift}: x=${v}: ${got[i]} vs exact ${exact[i]}`);
    });
  }
});

test('bytes and flights per ReLU (width 45, shift 12): <= 700 B in all, 6 online flights', async () => {
  const n = 4096,
    site: ReluSite = { op: 3, name: 'stem.relu', size: n, width: 45, shift: 12 };
  const { a, b } = inputs(45, 12, n - EDGES);
  const { off, on } = await runSite(site, a, b);
  const shape = siteShape(site);
  assert.equal(shape.leaves, 8);
  // Offline: KK13 matrix 32 B per leaf; IKNP 16 B per OT: 7 triple units + 1 mux OT per element, each direction.
  assert.equal(off.c.bytesSent, 32 * 8 * n + 16 * 7 * n + 16 * n);
  assert.equal(off.s.bytesSent, 16 * 7 * n + 16 * n);
  // Online: leaf tables 30 B, openings 2 x 18 bits, mux choice bits 2 x 1 bit, mux messages 2 x 8 B, re-share 8 B.
  assert.equal(on.s.bytesSent, 30 * n + (18 * n) / 8 + n / 8 + 8 * n);
  assert.equal(on.c.bytesSent, (18 * n) / 8 + n / 8 + 16 * n);
  assert.equal(on.s.rounds, 6);
  assert.equal(on.c.rounds, 6);
  const total = (off.c.bytesSent + off.s.bytesSent + on.s.bytesSent + on.c.bytesSent) / n;
  assert.ok(total <= 700, `${total} B per ReLU`);
});

test("'ot-online': the same result with nothing prepared offline; the OT matrices move online (their flights before the comparison's)", async () => {
  const n = 300,
    site: ReluSite = { op: 0, name: 'stage3.block1.relu2', size: n, width: 45, shift: 12 };
  const { x, a, b } = inputs(45, 12, n - EDGES);
  const [s, c] = channelPair();
  const [S, C] = await Promise.all([otOnlineRelu.server(s, opts(64).server), otOnlineRelu.client(c, opts(64).client)]);
  s.resetStats();
  c.resetStats();
  const r = mask(site);
  await Promise.all([S.offline(site), C.offline(site, b, r)]);
  assert.equal(s.stats().bytesSent + c.stats().bytesSent, 0);
  const [z] = await Promise.all([S.online(site, a), C.online(site)]);
  const y = r64ToBig(r64Add(z, r)),
    exact = r64ToBig(reluShiftClear(r64FromBig(x), 12));
  y.forEach((v, i) => assert.ok(v - exact[i]! === 0n || v - exact[i]! === 1n, `x=${x[i]}: ${v} vs ${exact[i]}`));
  // 5 chunks of 64: the first CHUNKS_IN_FLIGHT sent at once, then each later one sent after a receive, a last
  // receive that the comparison's first flight (to the client) continues; then the 6 flights of an op.
  assert.equal(c.stats().rounds, 1 + 2 * (5 - CHUNKS_IN_FLIGHT) + 6);
  // The OT matrices move online: the bytes of 'ot' (same batch size) offline and online together.
  const ot = await runSite(site, a, b, 64);
  assert.equal(c.stats().bytesSent, ot.off.c.bytesSent + ot.on.c.bytesSent);
  assert.equal(s.stats().bytesSent, ot.off.s.bytesSent + ot.on.s.bytesSent);
  s.close();
});

test('a site of 16 chunks: each receiver holds at most two flights of CHUNKS_IN_FLIGHT chunks unread (ot, silent)', async () => {
  const batch = 256,
    n = 16 * batch,
    site: ReluSite = { op: 0, name: 'stem.relu', size: n, width: 45, shift: 12 };
  const { x, a, b } = inputs(45, 12, n - EDGES);
  for (const relu of [otRelu, silentRelu]) {
    const [s, c] = channelPair();
    const [S, C] = await Promise.all([relu.server(s, opts(batch).server), relu.client(c, opts(batch).client)]);
    const off = relu.maxMessageBytes([site], { batch }).offline;
    // the offline flight is a few chunks, far below the site's OT matrices (ot: ~630 B per ReLU to the server)
    assert.ok(off.flightToServer! < (CHUNKS_IN_FLIGHT + 1) * batch * 640, `${relu.name}: ${off.flightToServer}`);
    s.setLimits({ maxFrameBytes: off.toServer, maxBufferedBytes: 2 * Math.max(off.toServer, off.flightToServer!) });
    c.setLimits({ maxFrameBytes: off.toClient, maxBufferedBytes: 2 * Math.max(off.toClient, off.flightToClient!) });
    const r = mask(site);
    await Promise.all([S.offline(site), C.offline(site, b, r)]);
    // the limits were reached for something: the server held more than one chunk's matrices unread
    if (relu === otRelu) assert.ok(s.memory().peakIn > off.flightToServer! / CHUNKS_IN_FLIGHT, `${s.memory().peakIn}`);
    s.setLimits({ maxFrameBytes: 1 << 26, maxBufferedBytes: 1 << 28 });
    c.setLimits({ maxFrameBytes: 1 << 26, maxBufferedBytes: 1 << 28 });
    const [z] = await Promise.all([S.online(site, a), C.online(site)]);
    const y = r64ToBig(r64Add(z, r)),
      exact = r64ToBig(reluShiftClear(r64FromBig(x), 12));
    y.forEach((v, i) => assert.ok(v - exact[i]! === 0n || v - exact[i]! === 1n, `${relu.name}: x=${x[i]}`));
    s.close();
  }
});

test('malformed or truncated ReLU messages are named; online before offline is refused', async () => {
  const n = 100,
    site: ReluSite = { op: 5, name: 'stage2.block0.relu2', size: n, width: 45, shift: 12 };
  const { a, b } = inputs(45, 12, n - EDGES);
  for (const cut of ['mux', 'reshare'] as const) {
    const [s, c] = channelPair();
    const [S, C] = await Promise.all([otRelu.server(s, opts(16384).server), otRelu.client(c, opts(16384).client)]);
    await Promise.all([S.offline(site), C.offline(site, b, mask(site))]);
    // The client's mux choice corrections (the first message after the comparison), or its last message, lose a byte.
    const send = c.send.bind(c);
    let k = 0;
    const victim = cut === 'mux' ? 3 : 4;
    c.send = (d: Uint8Array) => send(++k === victim ? d.subarray(1) : d);
    const ps = S.online(site, a);
    void C.online(site).catch(() => {});
    await assert.rejects(
      ps,
      cut === 'mux'
        ? /malformed message: online: stage2\.block0\.relu2: mux choice corrections: expected 13 bytes, got 12/
        : /malformed message: online: stage2\.block0\.relu2: mux message and re-share: expected 1600 bytes, got 1599/,
    );
    s.close();
  }
  const [s, c] = channelPair();
  const [S] = await Promise.all([otRelu.server(s, opts(16384).server), otRelu.client(c, opts(16384).client)]);
  await assert.rejects(S.online(site, a), /relu ot: stage2\.block0\.relu2: online before offline/);
});

test("the server's view: OT matrices and values padded by the client's randomness; no client share or plain value; independent of the input", async () => {
  const [s, c, S, C] = await session(16384);
  const tr = new Transcript();
  tr.tap(s, 'client');
  const n = 2000,
    views: Uint8Array[][] = [];
  const agree = { e: 0, z: 0 };
  for (const kind of ['zero', 'large'] as const) {
    const x = Array.from({ length: n }, (_, i) =>
      kind === 'zero' ? 0n : (i % 2 ? 1n : -1n) * (randBig(43) | (1n << 40n)),
    );
    const b = r64FromBig(x.map(() => randBig(64)));
    const a = r64FromBig(x.map((v, i) => BigInt.asUintN(64, v - r64ToBig(b)[i]!)));
    const site: ReluSite = { op: nextOp(), name: `privacy.${kind}`, size: n, width: 45, shift: 12 };
    tr.label(`${kind}/offline`);
    const r = mask(site);
    await Promise.all([S.offline(site), C.offline(site, b, r)]);
    tr.label(`${kind}/online`);
    const [z] = await Promise.all([S.online(site, a), C.online(site)]);
    const y = r64Add(z, r);
    const bytes = (l: string) => tr.received([l]).map((f) => f.bytes);
    const online = bytes(`${kind}/online`),
      all = [...bytes(`${kind}/offline`), ...online];
    // No word of the client's shares (b, b', r, its mux share y - z... = r + its re-share) nor of x, x' and y.
    const xt = r64Add(r64Shr(a, 12), truncClientShare(b, 12));
    const secrets = secretWords(b, truncClientShare(b, 12), r, r64FromBig(x), xt, y);
    assert.ok(secrets.size >= 3 * n - 10, `${secrets.size} secret words`);
    assert.deepEqual(leakedWords(all, secrets), []);
    // The check would see a leak: the client's share b sent as is.
    assert.equal(leakedWords([r64ToBytes(b)], secrets).length, n);
    // Online, the server receives the client's openings (2 flights), its choice corrections, its mux message and
    // re-share: uniform bytes, the same distribution for both inputs.
    assert.equal(online.length, 4);
    const h = byteHistogram(online);
    assert.ok(chiSquareUniform(h) < CHI2_255_BOUND, `${kind}: chi2 ${chiSquareUniform(h).toFixed(1)}`);
    const bal = bitBalance(byteHistogram(all));
    assert.ok(Math.abs(bal.ones - 0.5) < bal.tolerance, `${kind}: ones ${bal.ones}`);
    views.push(online);
    // The choice corrections e1 = d1 ⊕ ρ (2nd online frame) carry nothing of DReLU(x); nor the re-share of y.
    const e1 = online[2]!,
      zs = online[3]!.subarray(8 * n),
      yb = r64ToBytes(y);
    for (let i = 0; i < n; i++) {
      if (((e1[i >>> 3]! >>> (i & 7)) & 1) === (x[i]! >= 0n ? 1 : 0)) agree.e++;
      if ((zs[8 * i]! & 1) === (yb[8 * i]! & 1)) agree.z++;
    }
  }
  const chi = chiSquareTwoSample(byteHistogram(views[0]!), byteHistogram(views[1]!));
  assert.ok(chi < CHI2_255_BOUND, `two-sample chi2 ${chi.toFixed(1)}`);
  for (const [k, v] of Object.entries(agree))
    assert.ok(Math.abs(v / (2 * n) - 0.5) < 0.04, `${k}: agreement with the plain value ${v / (2 * n)}`);
  void c;
});
