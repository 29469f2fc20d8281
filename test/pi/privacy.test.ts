// Privacy of the client's image against the server, as tests that a leak fails (docs/pi.md, "What the tests show").
// The server's view is everything it receives (from the client and, for dealer preprocessing, the dealer), recorded
// frame by frame. Sessions use the default preprocessing (he) unless a test names dealer, and name their ReLU
// protocol (gc: garbled circuits; ot: the OT ReLU, correlations offline; ot-online: made at each op's online call).
//  (1) Fixed randomness (client, server, dealer), two images: everything before the online phase is byte-identical
//      (he: the client's public key and its encrypted shares included; dealer: the dealer's shares; ot: its KK13 and
//      IKNP matrices; ot-online: the matrices it sends online too).
//  (2) Coupled masks (c0' = c0 + x' - x, r_i' = r_i + y'_i - y_i; gc: y the reference's ReLU outputs; ot: the OT
//      ReLU's actual outputs, ReLU of the locally truncated shares, helpers/simulation.ts): the online input share and
//      every online value of the server are byte-identical. Offline, only frames that carry the client's shares
//      differ: gc the OT matrices, ot the KK13 matrices (3), and for he the encrypted shares (RLWE: (7)). Online, the
//      OT ReLU's own messages differ (padded by the client's coins: (4), (8); the pads themselves: millionaire.test.ts
//      and kkot.test.ts).
//  (3) What no coupling covers (the OT matrices depend on the client's shares): uniform, image-independent and
//      uncorrelated with the client's choice bits, over fresh randomness (gc: IKNP columns against b and r; ot: the
//      KK13 columns against the codewords of its comparison digits, and its IKNP matrices of random choices).
//  (4) The online frames over fresh randomness (gc and ot): uniform, and the same distribution for two images.
//  (5) The client's masks and HE keys are fresh per session; (6) the garbler's delta is fresh per session.
//  (7) he: the encrypted shares look uniform whatever they encrypt (an all-zero input mask included).
//  (8) No word of any of the client's shares, nor of a plain value, at any byte offset of the server's view (gc, ot).
// Mutations tried on the OT ReLU (each applied by hand, then reverted; docs/pi.md lists them): the client's re-share
// sent unmasked (its share s1 instead of s1 - r) fails (2) he, ot at 'op 2 (stem.relu)' (the server's ReLU output
// share became the plain y); the multiplexer's random choice fixed to 0 (e1 = d1) and the client's triple choices
// fixed to 0 (its openings = its shares) keep results right and pass (1)-(8), and fail kkot.test.ts ('4096 of 4096
// choice corrections are 1') and millionaire.test.ts ('64.0 sigma away from one half').
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { buildNetwork, specFor } from '../../src/models/index.js';
import { manualSeed } from '../../src/engine/index.js';
import { compilePlan, referenceForward } from '../../src/pi/node/compile.js';
import { quantize, r64ToBig, truncClientShare, type R64 } from '../../src/pi/fixed.js';
import { seededClientRandomness, seededRandom, serverRandomness } from '../../src/pi/random.js';
import { gcServerDelta } from '../../src/pi/relu/gc/protocol.js';
import { randomR64, systemRandom, type ClientRandomness } from '../../src/pi/random.js';
import { HE_PARAMS } from '../../src/pi/he/params.js';
import { sampleCbd } from '../../src/pi/he/sample.js';
import { writeUpload } from '../../src/pi/he/serialize.js';
import {
  coupledClientRandomness,
  coupledOtClientRandomness,
  heKind,
  shareBytes,
  simulate,
  type SimResult,
  checkClose as checkCloseTo,
  once,
} from './helpers/simulation.js';
import { leakedWords, secretWords, totalBytes, transcriptDifference, type Frame } from './helpers/transcript.js';
import { siteShape } from '../../src/pi/relu/ot/protocol.js';
import { bitBalance, byteHistogram, chiSquareTwoSample, chiSquareUniform, CHI2_255_BOUND } from './helpers/stats.js';

manualSeed(5);
// All ReLUs kept: the secure result equals the reference bit for bit (dealer; he up to the carries of its linear layers,
// docs/pi-he.md), which the coupling needs. The he carries are the same in two coupled runs: the uploads differ by
// round(q d / t) for the mask difference d, c1 and the server's coins are the same, so each decrypted value moves by
// exactly M d (the switch's rounding could differ only within 2^-100 of a tie). One block per stage
// keeps every kind of op (residual adds, downsampling, pooling, fc) at a few seconds for the whole file.
const model = compilePlan(
  buildNetwork(specFor('resnet20', { alpha: 0.25, inputSize: 8, numClasses: 10, blocks: [1, 1, 1] })).eval(),
);
after(() => model.dispose());
const n = 3 * 64;
const imageA = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) * 2);
const imageB = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3 + Math.cos(i) * 0.5);
const PRE_ONLINE = ['hello', 'setup', 'offline'];

const fixed = (seed: string) => ({
  server: serverRandomness(seededRandom(`${seed}/server`)),
  dealer: seededRandom(`${seed}/dealer`),
});

/**
 * gc: dealer preprocessing gives the reference bit for bit; he within the HE linear layers' error (each output may
 * carry +-1 before its truncation, docs/pi-he.md), amplified by the later layers like checkClose's.
 */
function checkCorrect(r: SimResult, x: Float32Array, prep: 'he' | 'dealer'): void {
  if (prep === 'he') checkClose(r, x);
  else assert.deepEqual(r64ToBig(r.client.out), r64ToBig(referenceForward(model, quantize(x, model.plan.fixed.f)).out));
}

const checkClose = (r: SimResult, x: Float32Array): void => checkCloseTo(model, r, x);

const fixedRun = (image: Float32Array, preprocess: string, relu: string) =>
  simulate({ model, image, client: seededClientRandomness('c1'), ...fixed('1'), preprocess, relu });
const fixedA = {
  'he/gc': once(() => fixedRun(imageA, 'he', 'gc')),
  'dealer/gc': once(() => fixedRun(imageA, 'dealer', 'gc')),
  'he/ot': once(() => fixedRun(imageA, 'he', 'ot')),
  'he/ot-online': once(() => fixedRun(imageA, 'he', 'ot-online')),
};
const fresh = {
  gc: {
    A: once(() => simulate({ model, image: imageA, relu: 'gc' })),
    Const: once(() => simulate({ model, image: new Float32Array(n).fill(3), relu: 'gc' })),
    A2: once(() => simulate({ model, image: imageA, relu: 'gc' })),
  },
  ot: {
    A: once(() => simulate({ model, image: imageA, relu: 'ot' })),
    Const: once(() => simulate({ model, image: new Float32Array(n).fill(3), relu: 'ot' })),
    A2: once(() => simulate({ model, image: imageA, relu: 'ot' })),
  },
};

const relus = model.plan.ops.filter((o) => o.op === 'relu').length,
  linears = model.plan.ops.filter((o) => o.op === 'conv' || o.op === 'fc').length;

/** Frames the client sends before the online phase besides HE messages: the hello, the set-up's, the OT matrices. */
const preOnlineOt: Record<string, number> = {
  // hello, the base OTs' receiver points, one OT matrix per ReLU op (one batch each)
  gc: 2 + relus,
  // hello, the base OTs' sender point, IKNP A's matrix for 128 OTs; per ReLU op (one chunk each) its KK13 matrix and
  // IKNP A's matrices for the triples and the multiplexer
  ot: 3 + 3 * relus,
  // the set-up only: the matrices go online
  'ot-online': 3,
};

for (const [key, what] of [
  ['he/gc', 'HE public key and encrypted shares'],
  ['dealer/gc', 'dealer shares'],
  ['he/ot', 'KK13 and IKNP matrices, HE messages'],
  ['he/ot-online', 'HE messages'],
] as const) {
  const [prep, relu] = key.split('/') as ['he' | 'dealer', string];
  test(`(1) ${prep}, ${relu}: fixed randomness, two images: the whole pre-online transcript (hello, base OTs, ${what}) is byte-identical`, async () => {
    const a = await fixedA[key]();
    const b = await fixedRun(imageB, prep, relu);
    if (relu === 'gc') {
      checkCorrect(a, imageA, prep);
      checkCorrect(b, imageB, prep);
    }
    const pa = a.server.received(PRE_ONLINE),
      pb = b.server.received(PRE_ONLINE);
    // Every kind of frame is in it: the hello, base-OT points, the OT matrices of every ReLU op; he: the public key
    // and one upload per linear layer from the client; dealer: s per linear layer from the dealer.
    const fromClient = pa.filter((f) => f.channel === 'client');
    if (prep === 'he') {
      assert.equal(fromClient.length, preOnlineOt[relu]! + 1 + linears);
      assert.equal(fromClient.filter((f) => heKind(f) === 'publicKey').length, 1);
      assert.equal(fromClient.filter((f) => heKind(f) === 'upload').length, linears);
      assert.equal(pa.filter((f) => f.channel === 'dealer').length, 0);
    } else {
      assert.equal(fromClient.length, preOnlineOt[relu]!);
      assert.equal(pa.filter((f) => f.channel === 'dealer').length, linears);
    }
    assert.ok(totalBytes(pa) > 100_000, `${totalBytes(pa)} bytes before the online phase`);
    assert.equal(transcriptDifference(pa, pb), null);
    // The online phase is where the image enters: there the transcripts differ (so the comparison above is not vacuous).
    const oa = a.server.received(['online']),
      ob = b.server.received(['online']);
    assert.notEqual(transcriptDifference(oa, ob), null);
    if (relu === 'ot-online') {
      // Its OT matrices (the first 3 of each ReLU op's 7 client frames online) depend on the client's shares and
      // coins only: byte-identical too; the comparison's openings, the multiplexer's messages and the re-share differ.
      assert.equal(oa.length, 1 + 7 * relus);
      for (let k = 1; k < oa.length; k++) {
        const same = transcriptDifference([oa[k]!], [ob[k]!]) === null;
        assert.equal(same, (k - 1) % 7 < 3, `online frame ${k} (${(k - 1) % 7} of its op)`);
      }
    }
  });
}

for (const prep of ['he', 'dealer'] as const) {
  test(`(2) ${prep}, gc: coupled masks: the online input share and every online value of the server are byte-identical for two images`, async () => {
    const a = await fixedA[`${prep}/gc`]();
    const b = await simulate({
      model,
      image: imageB,
      client: coupledClientRandomness('c1', model, imageA, imageB),
      ...fixed('1'),
      preprocess: prep,
      relu: 'gc',
    });
    checkCorrect(a, imageA, prep);
    checkCorrect(b, imageB, prep);
    coupledOnline(a, b);
    // Offline, the frames that carry the client's shares differ (OT matrices; he: the encrypted shares, whose
    // indistinguishability is RLWE's, not byte-identity); everything else is byte-identical, the public key included.
    const pa = a.server.received(PRE_ONLINE),
      pb = b.server.received(PRE_ONLINE);
    assert.equal(pa.length, pb.length);
    const differ = pa.flatMap((f, i) =>
      transcriptDifference([f], [pb[i]!]) === null
        ? []
        : [heKind(f) ?? (f.phase === 'offline' && f.channel === 'client' ? 'OT matrix' : `frame ${i}`)],
    );
    assert.deepEqual([...new Set(differ)].sort(), prep === 'he' ? ['OT matrix', 'upload'] : ['OT matrix']);
    pa.forEach((f, i) => assert.equal(f.bytes.length, pb[i]!.bytes.length, `frame ${i}: length`));
  });
}

test("(2) he, ot: coupled masks (r shifted by the OT ReLU's actual outputs): the online input share and every online value of the server are byte-identical for two images", async () => {
  const a = await fixedA['he/ot']();
  const cp = coupledOtClientRandomness('c1', model, a, imageA, imageB);
  const b = await simulate({ model, image: imageB, client: cp, ...fixed('1'), preprocess: 'he', relu: 'ot' });
  // First the view (a leak that also breaks the result, e.g. an unmasked re-share, is then reported as a leak).
  coupledOnline(a, b);
  checkClose(a, imageA);
  checkClose(b, imageB);
  // Offline, exactly the frames that carry the client's shares differ: the KK13 matrices (their choices are the
  // digits of its truncated share b') and the HE uploads. The IKNP matrices (choices: random bits from the client's
  // coins, the same in both runs), the public key and the set-up are byte-identical.
  const pa = a.server.received(PRE_ONLINE),
    pb = b.server.received(PRE_ONLINE);
  assert.equal(pa.length, pb.length);
  let ot = 0;
  const kinds = pa.map(
    (f) =>
      heKind(f) ??
      (f.phase === 'offline' && f.channel === 'client'
        ? ot++ % 3 === 0
          ? 'KK13 matrix'
          : 'IKNP matrix'
        : `${f.phase} frame`),
  );
  const differ = pa.flatMap((f, i) => (transcriptDifference([f], [pb[i]!]) === null ? [] : [kinds[i]!]));
  assert.deepEqual([...new Set(differ)].sort(), ['KK13 matrix', 'upload']);
  assert.equal(differ.filter((k) => k === 'KK13 matrix').length, relus);
  assert.ok(kinds.filter((k) => k === 'IKNP matrix').length === 2 * relus);
  pa.forEach((f, i) => assert.equal(f.bytes.length, pb[i]!.bytes.length, `frame ${i}: length`));
  // Online, the ReLU ops' own messages (openings, choice corrections, multiplexer messages, re-shares) differ: they
  // carry the client's changed shares under its pads; (4) and (8) check them.
  assert.equal(a.server.received(['online'], 'client').length, 1 + 4 * relus);
});

/** The coupled runs' online views: the input share and every online share of the server are byte-identical. */
function coupledOnline(a: SimResult, b: SimResult): void {
  const inA = a.server.received(['online'], 'client')[0]!,
    inB = b.server.received(['online'], 'client')[0]!;
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
}

/** The OT choice bits of a GC ReLU op as the client packs them: its share b (low `width` bits) then its mask r (64). */
function choiceBits(b: R64, r: R64, width: number): Uint8Array {
  const nb = b.lo.length,
    m = nb * (width + 64),
    out = new Uint8Array(m);
  const put = (x: R64, w: number, off: number) => {
    for (let j = 0; j < w; j++)
      for (let i = 0; i < nb; i++) out[off + j * nb + i] = (j < 32 ? x.lo[i]! >>> j : x.hi[i]! >>> (j - 32)) & 1;
  };
  put(b, width, 0);
  put(r, 64, width * nb);
  return out;
}

/** For each of the `cols` columns of an OT matrix: how many of the first m bits agree with the code bits `code(i)`. */
function columnAgreement(u: Uint8Array, cols: number, code: (col: number) => Uint8Array): number[] {
  const colBytes = u.length / cols,
    out: number[] = [];
  for (let i = 0; i < cols; i++) {
    const c = code(i);
    let agree = 0;
    for (let k = 0; k < c.length; k++) agree += ((u[i * colBytes + (k >>> 3)]! >>> (k & 7)) & 1) === c[k] ? 1 : 0;
    out.push(agree);
  }
  return out;
}

/** The largest deviation from one half of a column's agreement, in standard deviations. */
const worstSigma = (agree: number[], m: number) =>
  Math.max(...agree.map((a) => Math.abs(a - m / 2) / (Math.sqrt(m) / 2)));

/** The client's offline frames other than HE messages (the OT matrices). */
const otFrames = (r: SimResult) => r.server.received(['offline'], 'client').filter((f) => heKind(f) === null);

/** gc: one IKNP matrix per ReLU op (one batch each); its 128 columns each carry the choice bits c (b, then r). */
function gcMatrices(r: SimResult): { u: Uint8Array; c: Uint8Array }[] {
  const frames = otFrames(r);
  const sites = model.plan.ops.map((o, i) => ({ o, i })).filter(({ o }) => o.op === 'relu');
  assert.equal(frames.length, sites.length, 'one OT matrix per ReLU op (one batch each)');
  return sites.map(({ o, i }, k) => {
    if (o.op !== 'relu') throw new Error('unreachable');
    return { u: frames[k]!.bytes, c: choiceBits(r.clientValues.get(o.input)!, r.clientValues.get(i)!, o.width) };
  });
}

/**
 * ot: per ReLU op (one chunk each) the KK13 matrix of the comparison's leaves, then IKNP A's for the triples and the
 * multiplexer (random choices). KK13 column i carries code bit parity(d & i & 15) of each OT's choice d, the digits of
 * the complement of the client's truncated share b' (leaf-major: digit j of element e is OT j n + e).
 */
function otMatricesOfOt(r: SimResult): { kk: Uint8Array; digits: Uint8Array; iknp: Uint8Array[] }[] {
  const frames = otFrames(r);
  const sites = model.plan.ops.map((o, i) => ({ o, i })).filter(({ o }) => o.op === 'relu');
  assert.equal(frames.length, 3 * sites.length, 'three OT matrices per ReLU op (one chunk each)');
  return sites.map(({ o }, k) => {
    if (o.op !== 'relu') throw new Error('unreachable');
    const shape = siteShape({ op: 0, name: o.name, size: o.size, width: o.width, shift: o.shift });
    const bt = truncClientShare(r.clientValues.get(o.input)!, o.shift),
      n = o.size,
      digits = new Uint8Array(shape.leaves * n);
    for (let j = 0; j < shape.leaves; j++) {
      for (let e = 0; e < n; e++) {
        const y = (BigInt.asUintN(64, ~r64ToBig(bt)[e]!) >> BigInt(4 * j)) & 15n;
        const keep = Math.min(4, shape.bits - 4 * j);
        digits[j * n + e] = Number(y) & ((1 << keep) - 1);
      }
    }
    return { kk: frames[3 * k]!.bytes, digits, iknp: [frames[3 * k + 1]!.bytes, frames[3 * k + 2]!.bytes] };
  });
}

const parity = (x: number) => {
  let p = 0;
  for (; x; x &= x - 1) p ^= 1;
  return p;
};
const kkCode = (digits: Uint8Array) => (col: number) => digits.map((d) => parity(d & col & 15));

function uniformAndAlike(frames: Uint8Array[][]): void {
  const hists = frames.map((f) => byteHistogram(f));
  for (const h of hists) {
    assert.ok(chiSquareUniform(h) < CHI2_255_BOUND, `chi2 ${chiSquareUniform(h).toFixed(1)}`);
    const bal = bitBalance(h);
    assert.ok(Math.abs(bal.ones - 0.5) < bal.tolerance, `bit balance ${bal.ones}`);
  }
  assert.ok(
    chiSquareTwoSample(hists[0]!, hists[1]!) < CHI2_255_BOUND,
    `two-sample chi2 ${chiSquareTwoSample(hists[0]!, hists[1]!).toFixed(1)}`,
  );
}

test('(3) gc: OT matrices, which no coupling covers: uniform, the same distribution for two images, uncorrelated with the choice bits', async () => {
  const runs = [await fresh.gc.A(), await fresh.gc.Const()];
  uniformAndAlike(runs.map((r) => otFrames(r).map((f) => f.bytes)));
  // Every column u^i = G(k0_i) + G(k1_i) + c hides the choice bits c: each agrees with c on about half the bits.
  let worst = 0;
  for (const r of runs)
    for (const { u, c } of gcMatrices(r))
      worst = Math.max(
        worst,
        worstSigma(
          columnAgreement(u, 128, () => c),
          c.length,
        ),
      );
  assert.ok(
    worst < 6,
    `a column of an OT matrix agrees with the choice bits ${worst.toFixed(1)} sigma away from one half`,
  );
  // The check has power: a matrix that carried the choice bits in one column is flagged.
  const { u, c } = gcMatrices(runs[0]!)[0]!;
  const leaky = u.slice(),
    colBytes = u.length / 128;
  for (let k = 0; k < c.length; k++)
    leaky[5 * colBytes + (k >>> 3)] = (leaky[5 * colBytes + (k >>> 3)]! & ~(1 << (k & 7))) | (c[k]! << (k & 7));
  assert.equal(columnAgreement(leaky, 128, () => c)[5], c.length);
});

test('(3) ot: KK13 and IKNP matrices: uniform, the same distribution for two images; KK13 columns uncorrelated with the codewords of the digits', async () => {
  const runs = [await fresh.ot.A(), await fresh.ot.Const()];
  uniformAndAlike(runs.map((r) => otFrames(r).map((f) => f.bytes)));
  // KK13 column i = G(k0_i) + G(k1_i) + (codeword bit i of each choice): it agrees with the code bits on about half.
  let worst = 0;
  for (const r of runs) {
    for (const { kk, digits } of otMatricesOfOt(r))
      worst = Math.max(worst, worstSigma(columnAgreement(kk, 256, kkCode(digits)), digits.length));
  }
  assert.ok(
    worst < 6,
    `a KK13 column agrees with the codeword bits of the client's digits ${worst.toFixed(1)} sigma away from one half`,
  );
  // Power: a column that carried the code bits of pattern 5 is flagged.
  const { kk, digits } = otMatricesOfOt(runs[0]!)[0]!,
    code = kkCode(digits)(5);
  const leaky = kk.slice(),
    colBytes = kk.length / 256;
  for (let k = 0; k < code.length; k++)
    leaky[5 * colBytes + (k >>> 3)] = (leaky[5 * colBytes + (k >>> 3)]! & ~(1 << (k & 7))) | (code[k]! << (k & 7));
  assert.equal(columnAgreement(leaky, 256, kkCode(digits))[5], code.length);
});

for (const relu of ['gc', 'ot'] as const) {
  test(`(4) ${relu}: online frames over fresh randomness: uniform bytes, the same distribution for a constant and another image`, async () => {
    const views: Frame[][] = [
      (await fresh[relu].A()).server.received(['online'], 'client'),
      (await fresh[relu].Const()).server.received(['online'], 'client'),
    ];
    for (const v of views) assert.ok(totalBytes(v) > 8000, 'enough online bytes to test');
    uniformAndAlike(views.map((v) => v.map((f) => f.bytes)));
  });

  test(`(8) ${relu}: no word of the client's shares nor of a plain value at any byte offset of the server's whole view`, async () => {
    for (const [run, image] of [
      [fresh[relu].A, imageA],
      [fresh[relu].Const, new Float32Array(n).fill(3)],
    ] as const) {
      const r = await run();
      // The client's share of every value (its masks, its linear shares, its ReLU output shares r), the truncated
      // shares b' of the ReLU inputs (ot), and every plain value of the reference computation.
      const ref = referenceForward(model, quantize(image, model.plan.fixed.f));
      const truncated = model.plan.ops.flatMap((o) =>
        o.op === 'relu' ? [truncClientShare(r.clientValues.get(o.input)!, o.shift)] : [],
      );
      const secrets = secretWords(...r.clientValues.values(), ...truncated, ...ref.values);
      assert.ok(secrets.size > 1000, `${secrets.size} secret words`);
      const frames = r.server.received().map((f) => f.bytes);
      assert.deepEqual(leakedWords(frames, secrets).slice(0, 5), []);
      // The check has power: a frame with one share in it, at an odd offset, is found.
      const leak = new Uint8Array(64),
        share = r.clientValues.get(0)!;
      new DataView(leak.buffer).setUint32(13, share.lo[7]!, true);
      new DataView(leak.buffer).setUint32(17, share.hi[7]!, true);
      assert.deepEqual(leakedWords([leak], secrets), [{ frame: 0, offset: 13 }]);
    }
  });
}

test("(5) ot: the client's masks and HE keys are fresh per session: the same image twice gives unrelated input shares, OT matrices and ciphertexts", async () => {
  const [a, b] = [await fresh.ot.A(), await fresh.ot.A2()];
  const sa = a.server.received(['online'], 'client')[0]!.bytes,
    sb = b.server.received(['online'], 'client')[0]!.bytes;
  let same = 0,
    sameWords = 0;
  for (let i = 0; i < sa.length; i++) same += sa[i] === sb[i] ? 1 : 0;
  for (let i = 0; i < sa.length; i += 8) sameWords += sa.subarray(i, i + 8).every((v, k) => v === sb[i + k]) ? 1 : 0;
  // Independent uniform bytes agree with probability 1/256: 1,536 bytes give 6 on average.
  assert.ok(same < 30, `${same} of ${sa.length} bytes of the two input shares agree`);
  assert.equal(sameWords, 0);
  const ua = otFrames(a)[0]!.bytes,
    ub = otFrames(b)[0]!.bytes;
  assert.equal(ua.length, ub.length);
  assert.notDeepEqual(ua, ub);
  // The HE public key (fresh secret key) and every upload (fresh errors and seeds) differ too.
  const he = (r: SimResult) => r.server.received(['offline'], 'client').filter((f) => heKind(f) !== null);
  const ha = he(a),
    hb = he(b);
  assert.equal(ha.length, 1 + linears);
  ha.forEach((f, i) =>
    assert.notEqual(transcriptDifference([f], [hb[i]!]), null, `HE frame ${i} (${heKind(f)}) repeats`),
  );
  // And so are the session ids (in the hello).
  assert.notEqual(transcriptDifference(a.server.received(['hello']), b.server.received(['hello'])), null);
});

test("(6) the garbler's delta is fresh per session (read through a test hook on the server's ReLU half)", async () => {
  const deltas = [];
  for (const run of [fresh.gc.A, fresh.gc.Const, fresh.gc.A2]) {
    const d = gcServerDelta((await run()).reluServer!);
    assert.ok(d && d.length === 16 && (d[0]! & 1) === 1, 'delta: 16 bytes with lsb 1');
    deltas.push(d!);
  }
  // 127 bits other than the lsb: independent uniform deltas differ in about half of them, pair by pair.
  for (const [i, j] of [
    [0, 1],
    [0, 2],
    [1, 2],
  ] as const) {
    let diff = 0;
    for (let k = 0; k < 16; k++) for (let x = deltas[i]![k]! ^ deltas[j]![k]!; x; x >>= 1) diff += x & 1;
    assert.ok(
      diff > 127 / 2 - (6 * Math.sqrt(127)) / 2,
      `deltas of sessions ${i} and ${j}: only ${diff} of 127 bits differ`,
    );
  }
});

test('(7) he: the encrypted shares look uniform whatever they encrypt, an all-zero input mask included', async () => {
  // With c0 = 0 the input share is the image itself (this run only looks at the uploads): the first layer's upload
  // encrypts zeros, the others encrypt the client's random shares.
  const zero: ClientRandomness = {
    inputMask: (k) => ({ lo: new Uint32Array(k), hi: new Uint32Array(k) }),
    reluMask: (site) => randomR64(systemRandom, site.size),
    linearMask: (_op, n) => randomR64(systemRandom, n),
    bytes: systemRandom,
  };
  const runs = [await simulate({ model, image: imageA, client: zero }), await fresh.ot.A()];
  // upload payloads: past the 16-byte header, the packing (16) and the seed (16), 30-bit residues of c0
  const payloads = runs.map((r) =>
    r.server
      .received(['offline'], 'client')
      .filter((f) => heKind(f) === 'upload')
      .map((f) => f.bytes.subarray(48)),
  );
  const hists = payloads.map((p) => byteHistogram(p));
  for (const h of hists) {
    assert.ok(chiSquareUniform(h) < CHI2_255_BOUND, `chi2 ${chiSquareUniform(h).toFixed(1)}`);
    const bal = bitBalance(h);
    assert.ok(Math.abs(bal.ones - 0.5) < bal.tolerance, `bit balance ${bal.ones}`);
  }
  // the first layer's upload alone: zeros encrypted vs a random mask encrypted
  const first = payloads.map((p) => byteHistogram([p[0]!]));
  assert.ok(
    chiSquareTwoSample(first[0]!, first[1]!) < CHI2_255_BOUND,
    `two-sample chi2 ${chiSquareTwoSample(first[0]!, first[1]!).toFixed(1)}`,
  );
  // The check has power: an upload of zeros without the RLWE mask (c0 = e, errors in [-21, 21]) is far from uniform.
  const P = HE_PARAMS,
    err = sampleCbd(P.n, P.eta, systemRandom),
    c0 = new Uint32Array(P.primes.length * P.n);
  P.primes.forEach((q, i) =>
    err.forEach((x, k) => {
      c0[i * P.n + k] = x < 0 ? q + x : x;
    }),
  );
  const bare = writeUpload(P, 0, { th: 1, tw: 1, cw: 1, on: 1 }, new Uint8Array(16), [c0]).subarray(48);
  assert.ok(chiSquareUniform(byteHistogram([bare])) > 10 * CHI2_255_BOUND);
});
