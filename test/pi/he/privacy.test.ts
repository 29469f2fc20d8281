import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeEngine, type Poly } from '../../../src/pi/he/kernels.js';
import { HE_PARAMS, log2q, noiseBudget } from '../../../src/pi/he/params.js';
import { rnsConstants } from '../../../src/pi/he/rns.js';
import { encryptUploads, evaluate, keyGen, loadPublicKey, type InputCt } from '../../../src/pi/he/rlwe.js';
import { randomSeed, Xof } from '../../../src/pi/he/sample.js';
import { systemRandom } from '../../../src/pi/random.js';

// Circuit privacy. Two weight sets k1 != k2 give the same M c - s for the client's input c: c is constant (v at every
// coefficient) and k2 moves weight d from one tap to the next, so every output far from the wrap-around is unchanged.
// The weight-dependent noise k (e + r) differs, though (by d (e_P - e_(P-1)) at position P). The client decrypts
// the response modulo q, before the switch to 2^67 / 2^78 (which only removes information): the noise it sees must
// not tell k1 from k2. A two-sample test per kept position (z-scores of the mean difference, summed as a chi-square)
// stays at chance with the server's flooding (uniform over the whole noise region), for a fresh upload and for a
// crafted, non-fresh one (c0 = -a s + E with E = 2^(R - 16) at the even coefficients, R the noise region's bits: the
// noise becomes E (k_0 + k_2) at even positions, E k_1 at odd ones, up to the region's edge, far above any flooding
// sized for an honest upload's noise); it detects flooding that is off or too small for a fresh upload, and for the
// crafted upload a flooding sized for an honest upload (2^(40 + 26) times its weight noise, what the server used
// before issue 32), capped at E where the region is smaller than that.

const P = HE_PARAMS,
  n = P.n,
  T = 1n << 64n;
const { q } = rnsConstants(P);
/** The crafted upload's error, 2^CRAFT: 16 bits under the noise region (R = 86 bits with five primes). */
const CRAFT = BigInt(Math.ceil(log2q(P) - 64) - 16);
const KEEP = 256,
  RUNS = 24,
  D = 1 << 14;

test('circuit privacy: the decrypted noise does not tell two weight sets with the same M c - s apart, for a fresh upload and a crafted one', async (t) => {
  const cli = await HeEngine.create(P),
    srv = await HeEngine.create(P);
  const { sk, pk } = await keyGen(cli, systemRandom);
  const spk = await loadPublicKey(srv, pk);
  const v = 0x0123456789abcdefn;
  const seed = randomSeed(systemRandom),
    idx = Uint32Array.from({ length: n }, (_, i) => i);
  const [c0] = await encryptUploads(
    cli,
    sk,
    seed,
    [{ idx, lo: new Uint32Array(n).fill(Number(v & 0xffffffffn)), hi: new Uint32Array(n).fill(Number(v >> 32n)) }],
    systemRandom,
  );
  const a = await (await Xof.create(seed)).uniform(0, P.primes, n);
  const ct: InputCt = { c0: srv.poly(), a: srv.poly() };
  srv.words(ct.c0).set(c0!);
  srv.words(ct.a).set(a);

  const w1 = [20000, -12345, 31000],
    w2 = [20000 - D, -12345 + D, 31000]; // same sum: same output where no tap wraps
  const kernel = (w: number[]): Poly => {
    const k = new Int32Array(n);
    w.forEach((x, i) => {
      k[i] = x;
    });
    const p = srv.poly();
    srv.small(p, srv.putSmall(k), false);
    srv.forward(p);
    return p;
  };
  const k1 = kernel(w1),
    k2 = kernel(w2);
  const keep = Uint32Array.from({ length: KEEP }, (_, j) => 16 + 31 * j);
  const mLo = new Uint32Array(KEEP).fill(0x9abcdef0),
    mHi = new Uint32Array(KEEP).fill(0x12345678); // the mask, -s
  const m = (BigInt(w1.reduce((s, x) => s + x, 0)) * v + 0x123456789abcdef0n) % T;

  // the crafted upload: E = 2^CRAFT at the even coefficients, added in the NTT domain
  const crafted: InputCt = { c0: srv.poly(), a: ct.a };
  {
    const E = srv.poly();
    P.primes.forEach((p, i) => {
      const r = srv.residues(E, i),
        v = Number((1n << CRAFT) % BigInt(p));
      for (let j = 0; j < n; j += 2) r[j] = v;
    });
    srv.forward(E);
    const w = srv.words(crafted.c0),
      e = srv.words(E),
      c = srv.words(ct.c0);
    P.primes.forEach((p, i) => {
      for (let j = i * n; j < (i + 1) * n; j++) w[j] = (c[j]! + e[j]!) % p;
    });
  }

  /**
   * One response at the kept positions, decrypted modulo q (V = c0 + c1 s): its nearest message point mm =
   * round(t V / q) and the residue r = V - round(q mm / t) (centred, |r| <= q / 2t), the part of V in the noise region.
   * The mask is the fixed one above, or (fresh) uniform per response as the server draws it: then mm is -s shifted,
   * uniform whatever the weights, and what could tell the weights apart is r.
   */
  const decrypt = (k: Poly, floodBits: number, input: InputCt, fresh: boolean): { mm: bigint[]; r: bigint[] } => {
    const mark = srv.mark();
    const rnd = fresh ? systemRandom.bytes(8 * KEEP) : null;
    const lo = rnd ? new Uint32Array(rnd.buffer, 0, KEEP).slice() : mLo,
      hi = rnd ? new Uint32Array(rnd.buffer, 4 * KEEP, KEEP).slice() : mHi;
    const full = evaluate(srv, spk, [[input, k]], keep, lo, hi, floodBits, systemRandom);
    const c1 = srv.words(full.c1).slice(),
      c0 = srv.words(full.c0).slice();
    srv.release(mark);
    const cm = cli.mark(),
      x = cli.poly();
    cli.words(x).set(c1);
    cli.forward(x);
    cli.mul(x, x, sk.sNtt);
    cli.inverse(x);
    const res = P.primes.map((_, i) => cli.residues(x, i).slice());
    cli.release(cm);
    const mm: bigint[] = [],
      r: bigint[] = [];
    for (const pos of keep) {
      let val = 0n; // CRT
      P.primes.forEach((p, i) => {
        const pb = BigInt(p),
          Qi = q / pb;
        let inv = 1n,
          b = Qi % pb,
          e = pb - 2n;
        for (; e > 0n; e >>= 1n, b = (b * b) % pb) if (e & 1n) inv = (inv * b) % pb;
        val += ((((BigInt(res[i]![pos]!) + BigInt(c0[i * n + pos]!)) % pb) * inv) % pb) * Qi;
      });
      val %= q;
      const near = (2n * T * val + q) / (2n * q); // round(t V / q), in [0, t]
      mm.push(near % T);
      r.push(val - (2n * q * near + T) / (2n * T));
    }
    return { mm, r };
  };
  /** The residues of one response (fresh mask), as the client sees them. */
  const noise = (k: Poly, floodBits: number, input: InputCt = ct): bigint[] => decrypt(k, floodBits, input, true).r;

  /** Sum over positions of the squared z-score of the mean difference between the two weight sets. */
  const chi2 = (floodBits: number, input: InputCt = ct): number => {
    const s1 = Array.from({ length: RUNS }, () => noise(k1, floodBits, input)),
      s2 = Array.from({ length: RUNS }, () => noise(k2, floodBits, input));
    let chi = 0;
    for (let j = 0; j < KEEP; j++) {
      const x = s1.map((r) => Number(r[j]!)),
        y = s2.map((r) => Number(r[j]!));
      const mean = (u: number[]) => u.reduce((s, t) => s + t, 0) / u.length;
      const vr = (u: number[], mu: number) => u.reduce((s, t) => s + (t - mu) ** 2, 0) / (u.length - 1);
      const mx = mean(x),
        my = mean(y),
        se2 = (vr(x, mx) + vr(y, my)) / RUNS;
      chi += se2 > 0 ? (mx - my) ** 2 / se2 : mx === my ? 0 : Infinity;
    }
    return chi;
  };

  // Both weight sets decrypt to the same message (the fixed mask): the noise is small against q / t (|noise| < q / 2^65).
  for (const k of [k1, k2]) {
    const d = decrypt(k, 0, ct, false);
    assert.ok(
      d.mm.every((x) => x === m),
      'the message',
    );
    for (const e of d.r) assert.ok((e < 0n ? -e : e) < q >> 65n);
  }
  const kernelL1 = w1.reduce((s, x) => s + Math.abs(x), 0);
  const budget = noiseBudget(
    P,
    Math.max(
      kernelL1,
      w2.reduce((s, x) => s + Math.abs(x), 0),
    ),
  );
  // chi-square with KEEP degrees of freedom: mean KEEP, sd sqrt(2 KEEP); the t-distributed z-scores widen it a bit
  const limit = KEEP + 8 * Math.sqrt(2 * KEEP);
  const flooded = chi2(budget.floodBits);
  assert.ok(
    flooded < limit,
    `with flooding (${budget.floodBits} bits) the weight sets differ: chi2 ${flooded.toFixed(0)} over ${KEEP} positions`,
  );
  // a crafted upload: the noise it makes differs by 2^CRAFT d between the weight sets, and still nothing shows
  for (const k of [k1, k2])
    for (const e of decrypt(k, 0, crafted, false).r)
      assert.ok((e < 0n ? -e : e) > 1n << CRAFT, 'the crafted noise is there');
  const craftedChi = chi2(budget.floodBits, crafted);
  assert.ok(
    craftedChi < limit,
    `crafted upload, flooding over the noise region: the weight sets differ: chi2 ${craftedChi.toFixed(0)} over ${KEEP} positions`,
  );
  // the old flooding, sized for an honest upload (2^(40 + sessionCoeffBits) E_w; at most E here), does not hide it
  const oldBits = Math.min(Math.ceil(P.statBits + P.sessionCoeffBits + Math.log2(budget.weightNoise)), Number(CRAFT));
  const oldChi = chi2(oldBits, crafted);
  assert.ok(
    oldChi > 4 * limit,
    `crafted upload under the old ${oldBits}-bit flooding not detected: chi2 ${oldChi.toFixed(0)}`,
  );
  t.diagnostic(
    `chi2 over ${KEEP} positions (limit ${limit.toFixed(0)}): fresh upload ${flooded.toFixed(0)}, crafted ${craftedChi.toFixed(0)}, crafted under the old ${oldBits}-bit flooding ${oldChi.toExponential(2)}`,
  );
  // The test detects broken flooding: off, or smaller than the weight-dependent noise.
  for (const bits of [0, 12]) {
    const c = chi2(bits);
    assert.ok(c > 4 * limit, `flooding ${bits} bits not detected: chi2 ${c.toFixed(0)}`);
  }
});
