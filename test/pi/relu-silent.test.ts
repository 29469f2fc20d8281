// The OT ReLU on the silent COT (--relu silent): equal to plaintext (the ReLU of the truncated shares) at the range
// edges and at several widths, its bytes per ReLU by phase (<= 150 B in all), message bounds that cover what it sends,
// and the server's view (no client share, uniform frames).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNKS_IN_FLIGHT, siteCots, siteShape, silentRelu } from '../../src/pi/relu/ot/protocol.js';
import type { ReluSite } from '../../src/pi/relu/index.js';
import { r64Add, r64FromBig, r64Shr, r64ToBig, truncClientShare } from '../../src/pi/fixed.js';
import { randomR64, systemRandom } from '../../src/pi/random.js';
import { reluShiftClear } from '../../src/pi/plan.js';
import { makeReluProtocol, RELU_PROTOCOLS } from '../../src/pi/relu/registry.js';
import { leakedWords, secretWords, Transcript } from './helpers/transcript.js';
import { byteHistogram, chiSquareUniform, CHI2_255_BOUND } from './helpers/stats.js';
import { EDGES, reluHarness, reluInputs } from './helpers/relusite.js';

const inputs = reluInputs;
const { session, runSite, nextOp } = reluHarness(silentRelu);

test("'silent' is a registered ReLU protocol", () => {
  assert.ok(RELU_PROTOCOLS.includes('silent'));
  assert.equal(makeReluProtocol('silent').name, 'silent');
});

test('silent ReLU = ReLU of the truncated shares, within [0, +1] ULP of ReLU(x) >> shift; several widths, chunked', async () => {
  for (const [width, shift, batch] of [
    [45, 12, 16384],
    [45, 12, 64],
    [64, 0, 16384],
    [14, 12, 64],
    [33, 5, 16384],
  ] as const) {
    const { x, a, b } = inputs(width, shift, 200);
    const site: ReluSite = { op: 0, name: 'stage1.block0.relu1', size: x.length, width, shift };
    const { y } = await runSite(site, a, b, batch);
    const got = r64ToBig(y),
      exact = r64ToBig(reluShiftClear(r64FromBig(x), shift)),
      xt = r64ToBig(r64Add(r64Shr(a, shift), truncClientShare(b, shift)));
    x.forEach((v, i) => {
      const t = xt[i]!;
      assert.equal(got[i], t > 0n ? t : 0n, `w=${width} s=${shift} batch=${batch}: x=${v}`);
      const d = got[i]! - exact[i]!;
      assert.ok(d === 0n || d === 1n, `w=${width} s=${shift}: x=${v}: ${got[i]} vs exact ${exact[i]}`);
    });
  }
});

test('bytes per ReLU (width 45, shift 12): at most 150 B in all phases; offline = rounds + 1 bit per COT', async () => {
  const n = 32768,
    site0: ReluSite = { op: 0, name: 'stem.relu', size: n, width: 45, shift: 12 };
  const { a, b } = inputs(45, 12, n - EDGES);
  const { off, on, site } = await runSite(site0, a, b);
  const shape = siteShape(site),
    cots = siteCots(site, 16384);
  assert.equal(shape.leaves, 8);
  assert.equal(cots.a, 4 * 8 * n + 7 * n + n);
  assert.equal(cots.b, 7 * n + n);
  // Client -> server offline: the choice corrections of its A COTs (1 bit each); the rounds of B are whole messages.
  const roundBytes = 16 * 593 * 21;
  const cS = off.c.bytesSent % roundBytes,
    sS = off.s.bytesSent % roundBytes;
  assert.equal(cS, cots.a / 8, 'client offline: 1 bit per COT beside whole rounds');
  assert.equal(sS, cots.b / 8, 'server offline: 1 bit per COT beside whole rounds');
  const total = (off.c.bytesSent + off.s.bytesSent + on.s.bytesSent + on.c.bytesSent) / n;
  assert.ok(total <= 150, `${total.toFixed(1)} B per ReLU`);
  assert.equal(on.s.rounds, 6);
});

test('message bounds cover every message the silent ReLU sends (setup, offline)', () => {
  const site: ReluSite = { op: 0, name: 's', size: 65536, width: 45, shift: 12 };
  const bounds = silentRelu.maxMessageBytes([site], { batch: 16384 });
  // the set-up's bootstrap: IKNP matrix of 13,041 COTs (padded to 13,056), the RD1 round 590 x 15 blocks
  assert.equal(bounds.setup.toServer, 16 * 13056);
  assert.equal(bounds.setup.toClient, 16 * 13056);
  // offline: a round message each way; a flight of rounds readies a group of CHUNKS_IN_FLIGHT chunks, not the site
  assert.equal(bounds.offline.toClient, 16 * 593 * 21);
  const net = 607232 - (69454 + 593 * 10),
    group = siteCots({ ...site, size: CHUNKS_IN_FLIGHT * 16384 }, 16384),
    c = siteCots(site, 16384);
  assert.ok(bounds.offline.flightToClient! >= Math.ceil(group.a / net) * 16 * 593 * 21);
  assert.ok(bounds.offline.flightToClient! < Math.ceil(c.a / net) * 16 * 593 * 21);
  // a site 16 times larger: the same offline bounds (its online messages are the site's)
  assert.deepEqual(
    silentRelu.maxMessageBytes([{ ...site, size: 16 * 65536 }], { batch: 16384 }).offline,
    bounds.offline,
  );
});

test("the server's view of a silent ReLU site: no word of the client's shares or plain values; frames uniform", async () => {
  const [s, , S, C] = await session(16384);
  const tr = new Transcript();
  tr.tap(s, 'client');
  const n = 4000;
  const { x, a, b } = inputs(45, 12, n - EDGES);
  const site: ReluSite = { op: nextOp(), name: 'privacy.silent', size: n, width: 45, shift: 12 };
  tr.label('offline');
  const r = randomR64(systemRandom, n);
  await Promise.all([S.offline(site), C.offline(site, b, r)]);
  tr.label('online');
  const [z] = await Promise.all([S.online(site, a), C.online(site)]);
  const y = r64Add(z, r);
  const frames = tr.received(['offline', 'online']).map((f) => f.bytes);
  const xt = r64Add(r64Shr(a, 12), truncClientShare(b, 12));
  const secrets = secretWords(b, truncClientShare(b, 12), r, r64FromBig(x), xt, y);
  assert.deepEqual(leakedWords(frames, secrets), []);
  for (const f of frames.filter((f) => f.length >= 4096)) {
    const chi = chiSquareUniform(byteHistogram([f]));
    assert.ok(chi < CHI2_255_BOUND, `a frame of ${f.length} bytes: chi-square ${chi.toFixed(0)}`);
  }
});
