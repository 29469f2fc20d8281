// Privacy of the client's image against the server, as tests that a leak fails (docs/pi.md, "What the tests show").
// The server's view is everything it receives (from the client and the dealer), recorded frame by frame.
//  (1) Fixed randomness (client, server, dealer), two images: everything before the online phase is byte-identical.
//  (2) Coupled masks (c0' = c0 + x' - x, r_i' = r_i + y'_i - y_i): the online input share and every online value of
//      the server are byte-identical.
//  (3) What no coupling covers (the OT matrices depend on the client's shares): uniform, image-independent and
//      uncorrelated with the client's choice bits, over fresh randomness.
//  (4) The online frames over fresh randomness: uniform, and the same distribution for two images.
//  (5) The client's masks are fresh per session; (6) the garbler's delta is fresh per session.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/plan.js';
import { quantize, r64ToBig, type R64 } from '../../src/pi/fixed.js';
import { seededClientRandomness, seededRandom, serverRandomness } from '../../src/pi/random.js';
import { gcServerDelta } from '../../src/pi/relu/gc/protocol.js';
import { coupledClientRandomness, shareBytes, simulate, type SimResult } from './helpers/simulation.js';
import { totalBytes, transcriptDifference, type Frame } from './helpers/transcript.js';
import { bitBalance, byteHistogram, chiSquareTwoSample, chiSquareUniform, CHI2_255_BOUND } from './helpers/stats.js';

manualSeed(5);
// All ReLUs kept: the secure result equals the reference bit for bit, which the coupling needs. One block per stage
// keeps every kind of op (residual adds, downsampling, pooling, fc) at a few seconds for the whole file.
const model = compilePlan(buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval());
after(() => model.dispose());
const n = 3 * 64;
const imageA = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) * 2);
const imageB = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3 + Math.cos(i) * 0.5);
const PRE_ONLINE = ['hello', 'setup', 'offline'];

const fixed = (seed: string) => ({ server: serverRandomness(seededRandom(`${seed}/server`)), dealer: seededRandom(`${seed}/dealer`) });

function checkCorrect(r: SimResult, x: Float32Array): void {
  assert.deepEqual(r64ToBig(r.client.out), r64ToBig(referenceForward(model, quantize(x, model.plan.fixed.f)).out));
}

/** Sessions shared by the tests (each runs once, when first needed). */
const once = <T>(f: () => Promise<T>) => { let p: Promise<T> | null = null; return () => (p ??= f()); };
const fixedA = once(() => simulate({ model, image: imageA, client: seededClientRandomness('c1'), ...fixed('1') }));
const freshA = once(() => simulate({ model, image: imageA }));
const freshConst = once(() => simulate({ model, image: new Float32Array(n).fill(3) }));
const freshA2 = once(() => simulate({ model, image: imageA }));

test('(1) fixed randomness, two images: the whole pre-online transcript (hello, base OTs, OT matrices, dealer shares) is byte-identical', async () => {
  const a = await fixedA();
  const b = await simulate({ model, image: imageB, client: seededClientRandomness('c1'), ...fixed('1') });
  checkCorrect(a, imageA);
  checkCorrect(b, imageB);
  const pa = a.server.received(PRE_ONLINE), pb = b.server.received(PRE_ONLINE);
  // Every kind of frame is in it: the hello, base-OT points, one OT matrix per ReLU op, s per linear layer.
  const relus = model.plan.ops.filter((o) => o.op === 'relu').length, linears = model.plan.ops.filter((o) => o.op === 'conv' || o.op === 'fc').length;
  assert.equal(pa.filter((f) => f.channel === 'client').length, 2 + relus);
  assert.equal(pa.filter((f) => f.channel === 'dealer').length, linears);
  assert.ok(totalBytes(pa) > 100_000, `${totalBytes(pa)} bytes before the online phase`);
  assert.equal(transcriptDifference(pa, pb), null);
  // The online phase is where the image enters: there the transcripts differ (so the comparison above is not vacuous).
  assert.notEqual(transcriptDifference(a.server.received(['online']), b.server.received(['online'])), null);
});

test('(2) coupled masks: the online input share and every online value of the server are byte-identical for two images', async () => {
  const a = await fixedA();
  const b = await simulate({ model, image: imageB, client: coupledClientRandomness('c1', model, imageA, imageB), ...fixed('1') });
  checkCorrect(a, imageA);
  checkCorrect(b, imageB);
  const inA = a.server.received(['online'], 'client')[0]!, inB = b.server.received(['online'], 'client')[0]!;
  assert.equal(inA.bytes.length, 8 * n);
  assert.equal(transcriptDifference([inA], [inB]), null);
  // x - c0 is the same, and so is every share the server computes online from it: linear outputs M(v - c) + b + s and
  // each ReLU's output share z = y - r (the colour bits decoded with the server's own decode bits).
  assert.equal(a.serverValues.size, model.plan.ops.length);
  for (const [op, v] of a.serverValues) {
    assert.deepEqual(shareBytes(b.serverValues.get(op)!), shareBytes(v), `op ${op} (${model.plan.ops[op]!.name})`);
  }
  // The logits differ: the coupling changed the image, not the computation.
  assert.notDeepEqual(r64ToBig(a.client.out), r64ToBig(b.client.out));
});

/** The OT choice bits of a GC ReLU op as the client packs them: its share b (low `width` bits) then its mask r (64). */
function choiceBits(b: R64, r: R64, width: number): Uint8Array {
  const nb = b.lo.length, m = nb * (width + 64), out = new Uint8Array(m);
  const put = (x: R64, w: number, off: number) => {
    for (let j = 0; j < w; j++) for (let i = 0; i < nb; i++) out[off + j * nb + i] = ((j < 32 ? x.lo[i]! >>> j : x.hi[i]! >>> (j - 32)) & 1);
  };
  put(b, width, 0);
  put(r, 64, width * nb);
  return out;
}

/** For each of the 128 columns of an OT matrix: how many of the first m bits agree with the choice bits. */
function columnAgreement(u: Uint8Array, c: Uint8Array): number[] {
  const colBytes = u.length / 128, out: number[] = [];
  for (let i = 0; i < 128; i++) {
    let agree = 0;
    for (let k = 0; k < c.length; k++) agree += ((u[i * colBytes + (k >>> 3)]! >>> (k & 7)) & 1) === c[k] ? 1 : 0;
    out.push(agree);
  }
  return out;
}

function otMatrices(r: SimResult): { u: Uint8Array; c: Uint8Array }[] {
  const frames = r.server.received(['offline'], 'client');
  const sites = model.plan.ops.map((o, i) => ({ o, i })).filter(({ o }) => o.op === 'relu');
  assert.equal(frames.length, sites.length, 'one OT matrix per ReLU op (one batch each)');
  return sites.map(({ o, i }, k) => {
    if (o.op !== 'relu') throw new Error('unreachable');
    return { u: frames[k]!.bytes, c: choiceBits(r.clientValues.get(o.input)!, r.clientValues.get(i)!, o.width) };
  });
}

test('(3) OT matrices, which no coupling covers: uniform, the same distribution for two images, uncorrelated with the choice bits', async () => {
  const runs = [await freshA(), await freshConst()];
  const hists = runs.map((r) => byteHistogram(r.server.received(['offline'], 'client').map((f) => f.bytes)));
  for (const h of hists) {
    assert.ok(chiSquareUniform(h) < CHI2_255_BOUND, `chi2 ${chiSquareUniform(h).toFixed(1)}`);
    const bal = bitBalance(h);
    assert.ok(Math.abs(bal.ones - 0.5) < bal.tolerance, `bit balance ${bal.ones}`);
  }
  assert.ok(chiSquareTwoSample(hists[0]!, hists[1]!) < CHI2_255_BOUND, `two-sample chi2 ${chiSquareTwoSample(hists[0]!, hists[1]!).toFixed(1)}`);
  // Every column u^i = G(k0_i) + G(k1_i) + c hides the choice bits c: each agrees with c on about half the bits.
  let worst = 0;
  for (const r of runs) {
    for (const { u, c } of otMatrices(r)) {
      for (const agree of columnAgreement(u, c)) worst = Math.max(worst, Math.abs(agree - c.length / 2) / (Math.sqrt(c.length) / 2));
    }
  }
  assert.ok(worst < 6, `a column of an OT matrix agrees with the choice bits ${worst.toFixed(1)} sigma away from one half`);
  // The check has power: a matrix that carried the choice bits in one column is flagged.
  const { u, c } = otMatrices(runs[0]!)[0]!;
  const leaky = u.slice(), colBytes = u.length / 128;
  for (let k = 0; k < c.length; k++) leaky[5 * colBytes + (k >>> 3)] = (leaky[5 * colBytes + (k >>> 3)]! & ~(1 << (k & 7))) | (c[k]! << (k & 7));
  assert.equal(columnAgreement(leaky, c)[5], c.length);
});

test('(4) online frames over fresh randomness: uniform bytes, the same distribution for a constant and another image', async () => {
  const views: Frame[][] = [(await freshA()).server.received(['online'], 'client'), (await freshConst()).server.received(['online'], 'client')];
  const hists = views.map((v) => byteHistogram(v.map((f) => f.bytes)));
  for (const h of hists) {
    assert.ok(h.reduce((a, b) => a + b, 0) > 8000, 'enough online bytes to test');
    assert.ok(chiSquareUniform(h) < CHI2_255_BOUND, `chi2 ${chiSquareUniform(h).toFixed(1)}`);
    const bal = bitBalance(h);
    assert.ok(Math.abs(bal.ones - 0.5) < bal.tolerance, `bit balance ${bal.ones}`);
  }
  assert.ok(chiSquareTwoSample(hists[0]!, hists[1]!) < CHI2_255_BOUND);
});

test('(5) the client\'s masks are fresh per session: the same image twice gives unrelated input shares and OT matrices', async () => {
  const [a, b] = [await freshA(), await freshA2()];
  const sa = a.server.received(['online'], 'client')[0]!.bytes, sb = b.server.received(['online'], 'client')[0]!.bytes;
  let same = 0, sameWords = 0;
  for (let i = 0; i < sa.length; i++) same += sa[i] === sb[i] ? 1 : 0;
  for (let i = 0; i < sa.length; i += 8) sameWords += sa.subarray(i, i + 8).every((v, k) => v === sb[i + k]) ? 1 : 0;
  // Independent uniform bytes agree with probability 1/256: 1,536 bytes give 6 on average.
  assert.ok(same < 30, `${same} of ${sa.length} bytes of the two input shares agree`);
  assert.equal(sameWords, 0);
  const ua = a.server.received(['offline'], 'client')[0]!.bytes, ub = b.server.received(['offline'], 'client')[0]!.bytes;
  assert.equal(ua.length, ub.length);
  assert.notDeepEqual(ua, ub);
  // And so are the session ids (in the hello).
  assert.notEqual(transcriptDifference(a.server.received(['hello']), b.server.received(['hello'])), null);
});

test('(6) the garbler\'s delta is fresh per session (read through a test hook on the server\'s ReLU half)', async () => {
  const deltas = [];
  for (const run of [freshA, freshConst, freshA2]) {
    const d = gcServerDelta((await run()).reluServer!);
    assert.ok(d && d.length === 16 && (d[0]! & 1) === 1, 'delta: 16 bytes with lsb 1');
    deltas.push(d!);
  }
  // 127 bits other than the lsb: independent uniform deltas differ in about half of them, pair by pair.
  for (const [i, j] of [[0, 1], [0, 2], [1, 2]] as const) {
    let diff = 0;
    for (let k = 0; k < 16; k++) for (let x = deltas[i]![k]! ^ deltas[j]![k]!; x; x >>= 1) diff += x & 1;
    assert.ok(diff > 127 / 2 - 6 * Math.sqrt(127) / 2, `deltas of sessions ${i} and ${j}: only ${diff} of 127 bits differ`);
  }
});
