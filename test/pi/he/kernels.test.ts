import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HeEngine, type Poly } from '../../../src/pi/he/kernels.js';
import { HE_PARAMS, type HeParams } from '../../../src/pi/he/params.js';
import { mulModSmall, primitiveRoot2n, rnsConstants, shoupSmall } from '../../../src/pi/he/rns.js';

const P = HE_PARAMS;
const small: HeParams = { ...P, n: 256 }; // the same primes are NTT-friendly for every n <= 8192

/** Deterministic pseudo-random numbers (a fixed seed: these are known-answer inputs). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
}

/** Negacyclic product mod p, schoolbook, over the non-zero terms of b. */
function schoolbook(a: ArrayLike<number>, b: ArrayLike<number>, p: number): bigint[] {
  const n = a.length,
    P = BigInt(p),
    r = new Array<bigint>(n).fill(0n);
  for (let j = 0; j < n; j++) {
    if (!b[j]) continue;
    for (let i = 0; i < n; i++) {
      const k = i + j,
        v = BigInt(a[i]!) * BigInt(b[j]!);
      if (k < n) r[k]! += v;
      else r[k - n]! -= v;
    }
  }
  return r.map((v) => ((v % P) + P) % P);
}

async function engineWith(params: HeParams, polys: number[][][]): Promise<{ e: HeEngine; ps: Poly[] }> {
  const e = await HeEngine.create(params);
  const ps = polys.map((coeffs) => {
    const p = e.poly();
    coeffs.forEach((c, i) => e.residues(p, i).set(c));
    return p;
  });
  return { e, ps };
}

test('NTT products equal schoolbook negacyclic products for every prime (n = 256, dense; n = 8192, sparse)', async () => {
  for (const [params, nonzero] of [
    [small, 256],
    [P, 12],
  ] as const) {
    const rnd = lcg(params.n);
    const a = params.primes.map((p) => Array.from({ length: params.n }, () => Math.floor(rnd() * p)));
    const step = Math.ceil(params.n / nonzero);
    const bs = Array.from({ length: params.n }, (_, i) =>
      i % step === (step > 1 ? 3 : 0) ? Math.floor(rnd() * 65535) - 32767 : 0,
    );
    assert.equal(bs.filter((v) => v).length, nonzero);
    const b = params.primes.map((p) => bs.map((v) => (v + p) % p));
    const {
      e,
      ps: [x, y],
    } = await engineWith(params, [a, b]);
    e.forward(x!);
    e.forward(y!);
    e.mul(x!, x!, y!);
    e.inverse(x!);
    params.primes.forEach((p, i) => {
      const want = schoolbook(a[i]!, bs, p);
      const got = e.residues(x!, i);
      for (let k = 0; k < params.n; k++)
        assert.equal(BigInt(got[k]!), want[k], `n ${params.n}, prime ${i}, coefficient ${k}`);
    });
  }
});

test('known answers: NTT(1) is all ones, NTT(X) lists the odd powers of psi in bit-reversed order, X * X^(n-1) = -1', async () => {
  const n = small.n,
    logn = Math.log2(n);
  const one = small.primes.map(() => Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 0)));
  const x = small.primes.map(() => Array.from({ length: n }, (_, i) => (i === 1 ? 1 : 0)));
  const xl = small.primes.map(() => Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : 0)));
  const {
    e,
    ps: [p1, px, pl],
  } = await engineWith(small, [one, x, xl]);
  e.forward(p1!);
  e.forward(px!);
  e.forward(pl!);
  small.primes.forEach((p, i) => {
    assert.ok(e.residues(p1!, i).every((v) => v === 1));
    const psi = primitiveRoot2n(p, n),
      P = BigInt(p);
    const got = e.residues(px!, i);
    for (let k = 0; k < n; k++) {
      let r = 0;
      for (let b = 0; b < logn; b++) r |= ((k >>> b) & 1) << (logn - 1 - b);
      let w = 1n;
      for (let t = 0; t < 2 * r + 1; t++) w = (w * psi) % P;
      assert.equal(BigInt(got[k]!), w, `prime ${i}, slot ${k}`);
    }
  });
  e.mul(px!, px!, pl!);
  e.inverse(px!);
  small.primes.forEach((p, i) =>
    assert.deepEqual(
      Array.from(e.residues(px!, i)),
      Array.from({ length: n }, (_, k) => (k === 0 ? p - 1 : 0)),
    ),
  );
});

test('inverse(forward(a)) = a at N = 8192; the tables hold primitive 2N-th roots', async () => {
  const rnd = lcg(5);
  const a = P.primes.map((p) => Array.from({ length: P.n }, () => Math.floor(rnd() * p)));
  const {
    e,
    ps: [x],
  } = await engineWith(P, [a]);
  e.forward(x!);
  assert.ok(P.primes.some((_, i) => e.residues(x!, i).some((v, k) => v !== a[i]![k])));
  e.inverse(x!);
  P.primes.forEach((_, i) => assert.deepEqual(Array.from(e.residues(x!, i)), a[i]));
  const c = rnsConstants(P);
  P.primes.forEach((p, i) => {
    const w = BigInt(c.ntt[i * 6 * P.n + P.n / 2]!); // psi^bitrev(n/2) = psi
    let r = 1n;
    for (let k = 0; k < P.n; k++) r = (r * w) % BigInt(p);
    assert.equal(r, BigInt(p - 1), `psi^n = -1 mod ${p}`);
  });
});

test("the tables' double arithmetic equals BigInt: a b mod p and floor(w 2^32 / p), edges and random values", () => {
  const rnd = lcg(21);
  // every prime of the set, and the largest odd values below 2^30
  for (const p of [...HE_PARAMS.primes, 2 ** 30 - 35, 2 ** 30 - 1, 12289, 3]) {
    const P = BigInt(p);
    const vals = [
      0,
      1,
      2,
      p - 1,
      p - 2,
      Math.floor(p / 2),
      ...Array.from({ length: 2000 }, () => Math.floor(rnd() * p)),
    ];
    for (let k = 0; k < vals.length; k++) {
      const a = vals[k]!,
        b = vals[(k * 7 + 3) % vals.length]!;
      assert.equal(mulModSmall(a, b, p), Number((BigInt(a) * BigInt(b)) % P), `${a} * ${b} mod ${p}`);
      assert.equal(shoupSmall(a, p), Number((BigInt(a) << 32n) / P), `shoup(${a}, ${p})`);
    }
  }
});

test('dot products of many terms equal the sum of products mod p (folds every 15 terms)', async () => {
  const rnd = lcg(9),
    G = 33;
  const polys = Array.from({ length: 3 * G }, () =>
    small.primes.map((p) => Array.from({ length: small.n }, () => Math.floor(rnd() * p))),
  );
  const { e, ps } = await engineWith(small, polys);
  const out0 = e.poly(),
    out1 = e.poly();
  const terms = Array.from({ length: G }, (_, g) => [ps[3 * g]!, ps[3 * g + 1]!, ps[3 * g + 2]!] as [Poly, Poly, Poly]);
  e.dot(out0, out1, terms);
  small.primes.forEach((p, i) => {
    const P = BigInt(p);
    for (const k of [0, 1, 77, small.n - 1]) {
      let s0 = 0n,
        s1 = 0n;
      for (let g = 0; g < G; g++) {
        const kk = BigInt(polys[3 * g + 2]![i]![k]!);
        s0 += BigInt(polys[3 * g]![i]![k]!) * kk;
        s1 += BigInt(polys[3 * g + 1]![i]![k]!) * kk;
      }
      assert.equal(BigInt(e.residues(out0, i)[k]!), s0 % P);
      assert.equal(BigInt(e.residues(out1, i)[k]!), s1 % P);
    }
  });
});

test('the committed WebAssembly module is the compilation of src/pi/he/asm/kernels.ts', async () => {
  const root = fileURLToPath(new URL('../../../../', import.meta.url));
  const { compileHeKernels, heKernelsModule, HE_WASM_MODULE } = (await import(`${root}scripts/build-he-wasm.mjs`)) as {
    compileHeKernels(): Promise<Uint8Array>;
    heKernelsModule(w: Uint8Array): string;
    HE_WASM_MODULE: string;
  };
  assert.equal(
    readFileSync(`${root}${HE_WASM_MODULE}`, 'utf8'),
    heKernelsModule(await compileHeKernels()),
    'stale: run node scripts/build-he-wasm.mjs',
  );
});
