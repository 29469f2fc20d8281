// Privacy of the client's image under --relu silent, by the simulation and coupling tests of privacy.test.ts on the
// same small network (whole sessions: he preprocessing, the silent OT ReLU at every kept site):
//  (1) fixed randomness, two images: everything before the online phase is byte-identical (the silent set-up, its LPN
//      rounds, the COTs' choice corrections, the HE messages);
//  (2) coupled masks (r shifted by the ReLU's actual outputs): the online input share and every online share of the
//      server are byte-identical; offline, exactly the uploads and the leaf OTs' choice corrections differ (their
//      choices are the digits of the client's truncated shares; corrected by the COTs' random choice bits, (3));
//  (3) those corrections, over fresh randomness: uniform bits, the same distribution for two images;
//  (8) no word of the client's shares nor of a plain value anywhere in the server's view.
// Mutation tried by hand (then reverted): the receiver's correction bits sent as its choices (c instead of c ⊕ x in
// FerretReceiver.take) keeps results right and fails (2) ('the leaf corrections... and the triples'...') and (3).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { quantize, r64ToBig, truncClientShare } from '../../src/pi/fixed.js';
import { seededClientRandomness, seededRandom, serverRandomness } from '../../src/pi/random.js';
import { siteCots } from '../../src/pi/relu/ot/protocol.js';
import { reluCount } from '../../src/pi/plan.js';
import {
  checkClose as checkCloseTo,
  coupledOtClientRandomness,
  heKind,
  once,
  shareBytes,
  simulate,
  type SimResult,
} from './helpers/simulation.js';
import { leakedWords, secretWords, transcriptDifference, type Frame } from './helpers/transcript.js';
import { bitBalance, byteHistogram, chiSquareTwoSample, CHI2_255_BOUND } from './helpers/stats.js';

manualSeed(5);
const model = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval(),
);
after(() => model.dispose());
const n = 3 * 64;
const imageA = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) * 2);
const imageB = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3 + Math.cos(i) * 0.5);
const PRE_ONLINE = ['hello', 'setup', 'offline'];
const relu = 'silent';
const fixedServer = () => ({ server: serverRandomness(seededRandom('1/server')) });
const relus = model.plan.ops.filter((o) => o.op === 'relu').length;

const checkClose = (r: SimResult, x: Float32Array): void => checkCloseTo(model, r, x);

const fixedA = once(() =>
  simulate({ model, image: imageA, client: seededClientRandomness('c1'), ...fixedServer(), relu }),
);

test('(1) he, silent: fixed randomness, two images: the whole pre-online transcript is byte-identical', async () => {
  const a = await fixedA();
  const b = await simulate({ model, image: imageB, client: seededClientRandomness('c1'), ...fixedServer(), relu });
  checkClose(a, imageA);
  checkClose(b, imageB);
  const pa = a.server.received(PRE_ONLINE),
    pb = b.server.received(PRE_ONLINE);
  assert.ok(pa.length > 3 * relus, `${pa.length} frames before the online phase`);
  assert.equal(transcriptDifference(pa, pb), null);
  assert.notEqual(transcriptDifference(a.server.received(['online']), b.server.received(['online'])), null);
});

/** The client's offline frames that are not HE messages: its COTs' choice corrections and B's LPN rounds. */
function offlineOtFrames(r: SimResult): Frame[] {
  return r.server.received(['offline']).filter((f) => f.channel === 'client' && heKind(f) === null);
}

test('(2) he, silent: coupled masks: the online input share and every online share of the server are byte-identical; offline only the uploads and the leaf corrections differ', async () => {
  const a = await fixedA();
  const cp = coupledOtClientRandomness('c1', model, a, imageA, imageB);
  const b = await simulate({ model, image: imageB, client: cp, ...fixedServer(), relu });
  const inA = a.server.received(['online'], 'client')[0]!,
    inB = b.server.received(['online'], 'client')[0]!;
  assert.equal(transcriptDifference([inA], [inB]), null, 'the online input share');
  assert.equal(a.serverValues.size, model.plan.ops.length);
  for (const [op, v] of a.serverValues)
    assert.deepEqual(shareBytes(b.serverValues.get(op)!), shareBytes(v), `op ${op} (${model.plan.ops[op]!.name})`);
  assert.notDeepEqual(r64ToBig(a.client.out), r64ToBig(b.client.out));
  checkClose(a, imageA);
  checkClose(b, imageB);
  // Offline: the set-up and the rounds are identical; of the client's COT corrections, exactly the leaves' differ
  // (one frame per kept site, of log2(16) bits per leaf OT).
  const pa = a.server.received(PRE_ONLINE),
    pb = b.server.received(PRE_ONLINE);
  assert.equal(pa.length, pb.length);
  const differ = pa.flatMap((f, i) => (transcriptDifference([f], [pb[i]!]) === null ? [] : [f]));
  const uploads = differ.filter((f) => heKind(f) === 'upload'),
    ot = differ.filter((f) => heKind(f) === null);
  assert.ok(uploads.length > 0);
  assert.equal(ot.length, relus, 'one leaf-correction frame per kept ReLU site');
  const leafBytes = new Set(
    model.plan.ops.flatMap((o) => {
      if (o.op !== 'relu') return [];
      const c = siteCots({ op: 0, name: o.name, size: reluCount(o), width: o.width, shift: o.shift }, 1 << 30);
      return [Math.ceil((c.a - c.b) / 8)];
    }),
  );
  for (const f of ot) assert.ok(leafBytes.has(f.bytes.length), `a differing frame of ${f.bytes.length} bytes`);
});

test('(3) silent: the COT choice corrections over fresh randomness: uniform bits, the same distribution for two images', async () => {
  const [x, y] = await Promise.all([
    simulate({ model, image: imageA, relu }),
    simulate({ model, image: new Float32Array(n).fill(3), relu }),
  ]);
  const hx = byteHistogram(offlineOtFrames(x).map((f) => f.bytes)),
    hy = byteHistogram(offlineOtFrames(y).map((f) => f.bytes));
  const bx = bitBalance(hx);
  assert.ok(Math.abs(bx.ones - 0.5) < bx.tolerance, `ones ${bx.ones}`);
  const chi = chiSquareTwoSample(hx, hy);
  assert.ok(chi < CHI2_255_BOUND, `two-sample chi-square ${chi.toFixed(0)}`);
});

test("(8) silent: no word of the client's shares nor of a plain value at any byte offset of the server's whole view", async () => {
  const r = await fixedA();
  const ref = referenceForward(model, quantize(imageA, model.plan.fixed.f));
  const truncated = model.plan.ops.flatMap((o) =>
    o.op === 'relu' ? [truncClientShare(r.clientValues.get(o.input)!, o.shift)] : [],
  );
  const secrets = secretWords(...r.clientValues.values(), ...truncated, ...ref.values);
  assert.ok(secrets.size > 1000);
  assert.deepEqual(
    leakedWords(
      r.server.received().map((f) => f.bytes),
      secrets,
    ).slice(0, 5),
    [],
  );
});
