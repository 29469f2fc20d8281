import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeEngine, type Poly } from '../../../src/pi/he/kernels.js';
import { HE_PARAMS, noiseBudget } from '../../../src/pi/he/params.js';
import { rnsConstants } from '../../../src/pi/he/rns.js';
import { encryptUploads, evaluate, keyGen, loadPublicKey, type InputCt } from '../../../src/pi/he/rlwe.js';
import { randomSeed, Xof } from '../../../src/pi/he/sample.js';
import { systemRandom } from '../../../src/pi/random.js';

// Circuit privacy. Two weight sets k1 != k2 give the same M c - s for the client's input c: c is constant (v at every
// coefficient) and k2 moves weight d from one tap to the next, so every output far from the wrap-around is unchanged.
// The weight-dependent noise k (e + r) differs, though (by d (e_P - e_(P-1)) at position P). The client decrypts
// the response modulo q, before the switch to 2^67 / 2^78 (which only removes information): the noise it sees must
// not tell k1 from k2. A two-sample test per kept position (z-scores of the mean difference, summed as a chi-square)
// stays at chance with the flooding of the noise budget, and detects flooding that is off or too small.

const P = HE_PARAMS, n = P.n, T = 1n << 64n;
const { q } = rnsConstants(P);
const KEEP = 256, RUNS = 24, D = 1 << 14;

test('circuit privacy: the decrypted noise does not tell two weight sets with the same M c - s apart', async () => {
  const cli = await HeEngine.create(P), srv = await HeEngine.create(P);
  const { sk, pk } = await keyGen(cli, systemRandom);
  const spk = await loadPublicKey(srv, pk);
  const v = 0x0123456789abcdefn;
  const seed = randomSeed(systemRandom), idx = Uint32Array.from({ length: n }, (_, i) => i);
  const [c0] = await encryptUploads(cli, sk, seed, [{ idx, lo: new Uint32Array(n).fill(Number(v & 0xffffffffn)), hi: new Uint32Array(n).fill(Number(v >> 32n)) }], systemRandom);
  const a = await (await Xof.create(seed)).uniform(0, P.primes, n);
  const ct: InputCt = { c0: srv.poly(), a: srv.poly() };
  srv.words(ct.c0).set(c0!);
  srv.words(ct.a).set(a);

  const w1 = [20000, -12345, 31000], w2 = [20000 - D, -12345 + D, 31000]; // same sum: same output where no tap wraps
  const kernel = (w: number[]): Poly => {
    const k = new Int32Array(n);
    w.forEach((x, i) => { k[i] = x; });
    const p = srv.poly();
    srv.small(p, srv.putSmall(k), false);
    srv.forward(p);
    return p;
  };
  const k1 = kernel(w1), k2 = kernel(w2);
  const keep = Uint32Array.from({ length: KEEP }, (_, j) => 16 + 31 * j);
  const mLo = new Uint32Array(KEEP).fill(0x9abcdef0), mHi = new Uint32Array(KEEP).fill(0x12345678); // the mask, -s
  const m = (BigInt(w1.reduce((s, x) => s + x, 0)) * v + 0x123456789abcdef0n) % T;
  const delta = (2n * q * m + T) / (2n * T); // round(q m / t)

  /** The noise of one response at the kept positions, decrypted modulo q (c0 + c1 s - round(q m / t), centred). */
  const noise = (k: Poly, floodBits: number): bigint[] => {
    const mark = srv.mark();
    const full = evaluate(srv, spk, [[ct, k]], keep, mLo, mHi, floodBits, systemRandom);
    const c1 = srv.words(full.c1).slice(), c0 = srv.words(full.c0).slice();
    srv.release(mark);
    const cm = cli.mark(), x = cli.poly();
    cli.words(x).set(c1);
    cli.forward(x);
    cli.mul(x, x, sk.sNtt);
    cli.inverse(x);
    const res = P.primes.map((_, i) => cli.residues(x, i).slice());
    cli.release(cm);
    return Array.from(keep, (pos) => {
      let val = 0n; // CRT
      P.primes.forEach((p, i) => {
        const pb = BigInt(p), Qi = q / pb;
        let inv = 1n, b = Qi % pb, e = pb - 2n;
        for (; e > 0n; e >>= 1n, b = (b * b) % pb) if (e & 1n) inv = (inv * b) % pb;
        val += (((BigInt(res[i]![pos]!) + BigInt(c0[i * n + pos]!)) % pb) * inv % pb) * Qi;
      });
      let d = (val - delta) % q;
      if (d < 0n) d += q;
      return d > q / 2n ? d - q : d;
    });
  };

  /** Sum over positions of the squared z-score of the mean difference between the two weight sets. */
  const chi2 = (floodBits: number): number => {
    const s1 = Array.from({ length: RUNS }, () => noise(k1, floodBits)), s2 = Array.from({ length: RUNS }, () => noise(k2, floodBits));
    let chi = 0;
    for (let j = 0; j < KEEP; j++) {
      const x = s1.map((r) => Number(r[j]!)), y = s2.map((r) => Number(r[j]!));
      const mean = (u: number[]) => u.reduce((s, t) => s + t, 0) / u.length;
      const vr = (u: number[], mu: number) => u.reduce((s, t) => s + (t - mu) ** 2, 0) / (u.length - 1);
      const mx = mean(x), my = mean(y), se2 = (vr(x, mx) + vr(y, my)) / RUNS;
      chi += se2 > 0 ? (mx - my) ** 2 / se2 : mx === my ? 0 : Infinity;
    }
    return chi;
  };

  // Both weight sets decrypt to the same message: the noise is small against q / t (|noise| < q / 2^65).
  for (const k of [k1, k2]) for (const e of noise(k, 0)) assert.ok((e < 0n ? -e : e) < q >> 65n);
  const kernelL1 = w1.reduce((s, x) => s + Math.abs(x), 0);
  const budget = noiseBudget(P, Math.max(kernelL1, w2.reduce((s, x) => s + Math.abs(x), 0)));
  // chi-square with KEEP degrees of freedom: mean KEEP, sd sqrt(2 KEEP); the t-distributed z-scores widen it a bit
  const limit = KEEP + 8 * Math.sqrt(2 * KEEP);
  const flooded = chi2(budget.floodBits);
  assert.ok(flooded < limit, `with flooding (${budget.floodBits} bits) the weight sets differ: chi2 ${flooded.toFixed(0)} over ${KEEP} positions`);
  // The test detects broken flooding: off, or smaller than the weight-dependent noise.
  for (const bits of [0, 12]) {
    const c = chi2(bits);
    assert.ok(c > 4 * limit, `flooding ${bits} bits not detected: chi2 ${c.toFixed(0)}`);
  }
});
