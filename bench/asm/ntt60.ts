// A scalar negacyclic NTT over one 60-bit modulus (Shoup, the 64x64 -> 128 high half emulated with 32-bit pieces),
// compiled by bench/he.ts --kernels at run time to compare with src/pi/he's 30-bit SIMD NTT (two of which cover 60
// bits). AssemblyScript; not part of the TypeScript build (tsconfig excludes bench/asm).
@inline function mulhi64(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
export function fwd60(a: usize, tab: usize, n: i32, p: u64): void {
  const p2 = p << 1;
  const tabp = tab + (<usize>n << 3);
  let t = n;
  for (let m = 1; m < n; m <<= 1) {
    t >>= 1;
    for (let i = 0; i < m; i++) {
      const W = load<u64>(tab + (<usize>(m + i) << 3)), Wp = load<u64>(tabp + (<usize>(m + i) << 3));
      let x = a + (<usize>(2 * i * t) << 3);
      const end = x + (<usize>t << 3), off = <usize>t << 3;
      for (; x < end; x += 8) {
        let X = load<u64>(x);
        X = X >= p2 ? X - p2 : X;
        const Y = load<u64>(x + off);
        const T = W * Y - mulhi64(Wp, Y) * p;
        store<u64>(x, X + T);
        store<u64>(x + off, X - T + p2);
      }
    }
  }
}
