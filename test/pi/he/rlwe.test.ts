import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { HeEngine, type Poly } from '../../../src/pi/he/kernels.js';
import { HE_PARAMS, noiseBudget } from '../../../src/pi/he/params.js';
import { rnsConstants } from '../../../src/pi/he/rns.js';
import {
  decryptResponse,
  encryptUploads,
  evaluate,
  keyGen,
  loadPublicKey,
  noiseRegion,
  regionWords,
  respond,
  switchDown,
  type InputCt,
} from '../../../src/pi/he/rlwe.js';
import { randomSeed, sampleCbd, sampleTernary, Xof } from '../../../src/pi/he/sample.js';
import { systemRandom, type Random } from '../../../src/pi/random.js';

const P = HE_PARAMS,
  n = P.n,
  T = 1n << 64n;
const { q } = rnsConstants(P);
const words = (v: bigint[]) => ({
  lo: Uint32Array.from(v, (x) => Number(x & 0xffffffffn)),
  hi: Uint32Array.from(v, (x) => Number(x >> 32n)),
});
const big = (lo: Uint32Array, hi: Uint32Array) => Array.from(lo, (l, j) => (BigInt(hi[j]!) << 32n) | BigInt(l));
const rand64 = (k: number) => {
  const w = new Uint32Array(2 * k);
  globalThis.crypto.getRandomValues(w);
  return Array.from({ length: k }, (_, j) => (BigInt(w[2 * j + 1]!) << 32n) | BigInt(w[2 * j]!));
};
/** round(a / b) for a >= 0 (ties up). */
const roundDiv = (a: bigint, b: bigint) => (2n * a + b) / (2n * b);

test('encoding: round(q m / 2^64) mod p_i for edge and random m', async () => {
  const e = await HeEngine.create(P);
  const ms = [0n, 1n, 2n, (1n << 63n) - 1n, 1n << 63n, T - 1n, T - 2n, ...rand64(50)];
  const out = e.poly(),
    { lo, hi } = words(ms);
  const mp = e.alloc(8 * ms.length),
    w = e.u32(mp, 2 * ms.length);
  ms.forEach((_, j) => {
    w[2 * j] = lo[j]!;
    w[2 * j + 1] = hi[j]!;
  });
  e.addDelta(out, mp, 0, ms.length);
  P.primes.forEach((p, i) =>
    ms.forEach((m, j) =>
      assert.equal(BigInt(e.residues(out, i)[j]!), roundDiv(q * m, T) % BigInt(p), `m = ${m}, prime ${i}`),
    ),
  );
});

test('modulus switching: round(2^k c / q) mod 2^k from the residues, off by at most one near a tie', async () => {
  const e = await HeEngine.create(P);
  const cs = Array.from({ length: 200 }, (_, j) =>
    j === 0 ? 0n : j === 1 ? q - 1n : rand64(3).reduce((a, x) => (a << 64n) | x, 0n) % q,
  );
  const a = e.poly();
  P.primes.forEach((p, i) => e.residues(a, i).set(cs.map((c) => Number(c % BigInt(p)))));
  for (const [which, k] of [
    [0, P.c0Bits],
    [1, P.c1Bits],
  ] as const) {
    const out = e.alloc(12 * cs.length);
    e.modSwitch(out, a, 0, cs.length, which);
    const l = e.u32(out, 3 * cs.length);
    cs.forEach((c, j) => {
      const got = BigInt(l[3 * j]!) | (BigInt(l[3 * j + 1]!) << 32n) | (BigInt(l[3 * j + 2]!) << 64n);
      const K = 1n << BigInt(k),
        want = roundDiv(c << BigInt(k), q) % K;
      const frac = Number((((c << BigInt(k)) % q) * 1000000n) / q) / 1e6;
      if (Math.abs(frac - 0.5) > 1e-5) assert.equal(got, want, `k ${k}, c ${c}`);
      else assert.ok(got === want || (got - want + K) % K === K - 1n, `k ${k}, c ${c}: ${got} vs ${want}`);
    });
  }
});

/** Client and server engines with a key pair; the server holds the public key. */
async function session() {
  const cli = await HeEngine.create(P),
    srv = await HeEngine.create(P);
  const { sk, pk } = await keyGen(cli, systemRandom);
  return { cli, srv, sk, pk, spk: await loadPublicKey(srv, pk) };
}

/** Uploads of the plaintexts (all n coefficients each) loaded into the server's engine as input ciphertexts. */
async function upload(s: Awaited<ReturnType<typeof session>>, ms: bigint[][]): Promise<InputCt[]> {
  const seed = randomSeed(systemRandom),
    idx = Uint32Array.from({ length: n }, (_, i) => i);
  const c0s = await encryptUploads(
    s.cli,
    s.sk,
    seed,
    ms.map((m) => ({ idx, ...words(m) })),
    systemRandom,
  );
  const xof = await Xof.create(seed);
  const as = await Promise.all(c0s.map((_, j) => xof.uniform(j, P.primes, n)));
  // views are taken after all allocations (growing the memory detaches earlier ones)
  return c0s.map((c0, j) => {
    const c = s.srv.poly(),
      a = s.srv.poly();
    s.srv.words(c).set(c0);
    s.srv.words(a).set(as[j]!);
    return { c0: c, a };
  });
}

test('fresh ciphertexts decrypt: an upload switched down and decrypted gives its plaintext', async () => {
  const s = await session();
  const m = rand64(n);
  const [ct] = await upload(s, [m]);
  s.srv.inverse(ct!.c0);
  s.srv.inverse(ct!.a);
  const keep = Uint32Array.from({ length: n }, (_, i) => i);
  const d = decryptResponse(s.cli, s.sk, switchDown(s.srv, { c0: ct!.c0, c1: ct!.a }, keep), keep);
  assert.deepEqual(big(d.lo, d.hi), m);
});

test('processed ciphertexts decrypt: sum of products with sparse kernels, minus a mask, re-randomised and flooded', async () => {
  const s = await session(),
    G = 3;
  const ms = Array.from({ length: G }, () => rand64(n));
  const cts = await upload(s, ms);
  const kv = Array.from({ length: G }, (_, g) => {
    const k = new Int32Array(n);
    for (let t = 0; t < 30; t++) k[(t * 271 + g * 1009) % n] = ((t * 7919 + g) % 65535) - 32767;
    return k;
  });
  const kernels: Poly[] = kv.map((k) => {
    const p = s.srv.poly();
    s.srv.small(p, s.srv.putSmall(k), false);
    s.srv.forward(p);
    return p;
  });
  const keep = Uint32Array.from({ length: 300 }, (_, j) => (j * 27) % n);
  const mask = rand64(keep.length),
    { lo, hi } = words(mask);
  const resp = respond(
    s.srv,
    s.spk,
    cts.map((c, g) => [c, kernels[g]!]),
    keep,
    lo,
    hi,
    60, // far above the products' noise, far below q / t = 2^86
    systemRandom,
  );
  const d = big(...(Object.values(decryptResponse(s.cli, s.sk, resp, keep)) as [Uint32Array, Uint32Array]));
  keep.forEach((pos, j) => {
    let acc = mask[j]!;
    for (let g = 0; g < G; g++) {
      kv[g]!.forEach((w, i) => {
        if (!w) return;
        const src = pos - i;
        acc += src >= 0 ? BigInt(w) * ms[g]![src]! : -BigInt(w) * ms[g]![src + n]!;
      });
    }
    assert.equal(d[j], ((acc % T) + T) % T, `coefficient ${pos}`);
  });
  // the response carries only the kept coefficients of c0 and all of c1
  assert.equal(resp.c0.length, 3 * keep.length);
  assert.equal(resp.c1.length, 3 * n);
  // and before switching, c0 + c1 s holds the same message (evaluate is respond's first half)
  const full = evaluate(
    s.srv,
    s.spk,
    cts.map((c, g) => [c, kernels[g]!]),
    keep,
    lo,
    hi,
    0,
    systemRandom,
  );
  assert.deepEqual(
    big(
      ...(Object.values(decryptResponse(s.cli, s.sk, switchDown(s.srv, full, keep), keep)) as [
        Uint32Array,
        Uint32Array,
      ]),
    ),
    d,
  );
});

test('the noise region: W = ceil(q / 2^64) (86 bits); its flooding words are uniform below W (rejection), and a response flooded over it decrypts within 1 of its message', async (t) => {
  const { q } = rnsConstants(P),
    W = (q + T - 1n) / T,
    r = noiseRegion(P);
  assert.equal(r.bits, 86);
  assert.equal(BigInt(r.w[0]!) | (BigInt(r.w[1]!) << 32n) | (BigInt(r.w[2]!) << 64n) | (BigInt(r.w[3]!) << 96n), W);
  // a source whose first draw is all ones (>= W after masking) must be drawn again
  let first = true;
  const ones: Random = {
    bytes: (k) => {
      if (first) {
        first = false;
        return new Uint8Array(k).fill(0xff);
      }
      return systemRandom.bytes(k);
    },
  };
  const words4 = regionWords(r, 1000, ones);
  let top = 0;
  for (let j = 0; j < 1000; j++) {
    const v =
      BigInt(words4[4 * j]!) |
      (BigInt(words4[4 * j + 1]!) << 32n) |
      (BigInt(words4[4 * j + 2]!) << 64n) |
      (BigInt(words4[4 * j + 3]!) << 96n);
    assert.ok(v < W, `word ${j} is not below W`);
    if (v >= W / 2n) top++;
  }
  assert.ok(Math.abs(top - 500) < 100, `${top} of 1000 in the upper half`);
  // a product flooded over the region decrypts to M c - s + carry, carry in {-1, 0, 1}
  const s = await session();
  const m = rand64(n);
  const [ct] = await upload(s, [m]);
  const k = new Int32Array(n);
  for (let t = 0; t < 20; t++) k[(t * 401) % n] = ((t * 7919) % 65535) - 32767;
  const kp = s.srv.poly();
  s.srv.small(kp, s.srv.putSmall(k), false);
  s.srv.forward(kp);
  const keep = Uint32Array.from({ length: 2000 }, (_, j) => (j * 4 + 1) % n);
  const mask = rand64(keep.length),
    { lo, hi } = words(mask);
  const b = noiseBudget(P, 20 * 32767);
  const d = big(
    ...(Object.values(
      decryptResponse(s.cli, s.sk, respond(s.srv, s.spk, [[ct!, kp]], keep, lo, hi, b.floodBits, systemRandom), keep),
    ) as [Uint32Array, Uint32Array]),
  );
  let carries = 0;
  keep.forEach((pos, j) => {
    let acc = mask[j]!;
    k.forEach((w, i) => {
      if (w) acc += pos - i >= 0 ? BigInt(w) * m[pos - i]! : -BigInt(w) * m[pos - i + n]!;
    });
    const diff = BigInt.asIntN(64, d[j]! - (((acc % T) + T) % T));
    assert.ok(diff >= -1n && diff <= 1n, `coefficient ${pos}: off by ${diff}`);
    if (diff) carries++;
  });
  // about E|switching noise| / 2^14: 512 / 16384 for c0's rounding at 2^67, a little more for c1 s
  assert.ok(carries > 0 && carries < 0.08 * keep.length, `${carries} of ${keep.length} carried`);
  t.diagnostic(`${carries} of ${keep.length} decrypted values carried (off by 1)`);
});

test("the server's flooding covers exactly the W = ceil(q / t) values of the noise region, not 2^86 (with a fixed mask, V - round(q m / t) stays below W - 2^85)", async () => {
  const s = await session(),
    r = noiseRegion(P),
    W = (q + T - 1n) / T,
    half = 1n << BigInt(r.bits - 1);
  const [ct] = await upload(s, [new Array<bigint>(n).fill(0n)]);
  const zero = s.srv.poly(); // kernel 0: V = round(q m / t) + u e' + e1 + e2 s + F
  const keep = Uint32Array.from({ length: n }, (_, i) => i);
  const mask = 0x0123456789abcdefn,
    lo = new Uint32Array(n).fill(Number(mask & 0xffffffffn)),
    hi = new Uint32Array(n).fill(Number(mask >> 32n));
  const delta = roundDiv(q * mask, T);
  const invs = P.primes.map((p) => {
    const pb = BigInt(p),
      Qi = q / pb;
    let inv = 1n,
      b = Qi % pb,
      e = pb - 2n;
    for (; e > 0n; e >>= 1n, b = (b * b) % pb) if (e & 1n) inv = (inv * b) % pb;
    return Qi * inv;
  });
  let above = 0,
    below = 0,
    min = 0n,
    max = 0n;
  for (let run = 0; run < 4; run++) {
    const m = s.srv.mark();
    const full = evaluate(s.srv, s.spk, [[ct!, zero]], keep, lo, hi, noiseBudget(P, 1).floodBits, systemRandom);
    const c1 = s.srv.words(full.c1).slice(),
      c0 = s.srv.words(full.c0).slice();
    s.srv.release(m);
    const cm = s.cli.mark(),
      x = s.cli.poly();
    s.cli.words(x).set(c1);
    s.cli.forward(x);
    s.cli.mul(x, x, s.sk.sNtt);
    s.cli.inverse(x);
    const res = P.primes.map((_, i) => s.cli.residues(x, i).slice());
    s.cli.release(cm);
    for (let pos = 0; pos < n; pos++) {
      let v = 0n;
      P.primes.forEach((p, i) => {
        v += BigInt((res[i]![pos]! + c0[i * n + pos]!) % p) * invs[i]!;
      });
      let d = (v - delta) % q;
      if (d < 0n) d += q;
      if (d > q / 2n) d -= q;
      // the noise besides F is below 2^20: F alone decides on which side of the bounds d falls
      if (d > W - half + (1n << 20n)) above++;
      if (d < -half - (1n << 20n)) below++;
      if (d < min) min = d;
      if (d > max) max = d;
    }
  }
  // 2^15 samples: a flooding over 2^86 values would put about 2^15 (2^86 - W) / 2^86 = 35 of them above W - 2^85
  assert.equal(r.bits, 86);
  assert.equal(above, 0, `${above} of ${4 * n} flooded values above W - 2^85`);
  assert.equal(below, 0, `${below} of ${4 * n} flooded values below -2^85`);
  // and the flooding spans the region (its extremes come within 2^75 of the ends)
  assert.ok(max > W - half - (1n << 75n) && min < -half + (1n << 75n), `extremes ${min}, ${max}`);
});

test('XOF: stream d is AES-128-CTR (zero IV) under K_d = AES_seed(d); WebCrypto gives the same bytes', async () => {
  const seed = randomSeed(systemRandom),
    xof = await Xof.create(seed);
  const block = (d: number) => {
    const b = new Uint8Array(16);
    new DataView(b.buffer).setUint32(12, d);
    return b;
  };
  const ecb = createCipheriv('aes-128-ecb', seed, null).setAutoPadding(false);
  const k7 = new Uint8Array(ecb.update(block(7)));
  assert.deepEqual(xof.key(7), k7);
  const got = await xof.words(7, 64, 3);
  const want = createCipheriv('aes-128-ctr', k7, new Uint8Array(16))
    .update(new Uint8Array(256 + 48))
    .subarray(48);
  assert.deepEqual(new Uint8Array(got.buffer, got.byteOffset, got.byteLength), new Uint8Array(want));
  // the browser's path (WebCrypto, 128-bit counter) expands the same stream
  const subtle = globalThis.crypto.subtle;
  const k = await subtle.importKey('raw', k7, 'AES-CTR', false, ['encrypt']);
  const web = new Uint8Array(
    await subtle.encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 128 }, k, new Uint8Array(256 + 48)),
  );
  assert.deepEqual(web.subarray(48), new Uint8Array(want));
  // streams differ by domain; uniform is below each prime and reproducible
  assert.notDeepEqual(await xof.words(8, 64, 3), got);
  const u = await xof.uniform(1, P.primes, 64);
  P.primes.forEach((p, i) => assert.ok(u.subarray(64 * i, 64 * (i + 1)).every((v) => v < p)));
  assert.deepEqual(await (await Xof.create(seed)).uniform(1, P.primes, 64), u);
});

test('samplers: ternary uniform on {-1, 0, 1}; CBD(21) bounded by 21 with variance 10.5', () => {
  const t = sampleTernary(30000, systemRandom),
    counts = [0, 0, 0];
  for (const v of t) counts[v + 1]!++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `ternary counts ${counts}`);
  const e = sampleCbd(30000, 21, systemRandom);
  let s = 0,
    s2 = 0;
  for (const v of e) {
    assert.ok(Math.abs(v) <= 21);
    s += v;
    s2 += v * v;
  }
  assert.ok(Math.abs(s / e.length) < 0.1, `mean ${s / e.length}`);
  assert.ok(Math.abs(s2 / e.length - 10.5) < 0.5, `variance ${s2 / e.length}`);
});
