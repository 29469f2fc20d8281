// The ReLU / rescale circuits of the private-inference protocol, over the ring Z_2^k.
//
// Inputs (all k bits, LSB first): garbler 'a' (server share), garbler 'r' (server's fresh output mask),
// evaluator 'b' (client share). Output 'z' (k bits), decoded by the client:
//   x  = a + b mod 2^k, read as signed two's complement
//   y  = ReLU(x)                      (reluCircuit)    or  y = x       (truncCircuit)
//   yt = floor(y / 2^f)               (arithmetic shift; free: wire selection, the sign bit copied in)
//   z  = yt - r mod 2^k               (client keeps z, server keeps r: an additive re-sharing of yt)
// AND gates: adder k-1, select k-1-f (ReLU only; bits below f are dropped and the sign bit of y is 0),
// subtractor k-1; e.g. k = 32, f = 12: 81 ANDs. Truncation inside the circuit is exact (floor), with no
// probabilistic error, because x is reconstructed in full.
import { CircuitBuilder, ZERO, ONE, type Circuit, type Wire } from './circuit.js';
import { checkRingBits } from './ring.js';

/** x + y + cin mod 2^k, ripple carry, one AND per carry: c' = c ⊕ ((x ⊕ c) ∧ (y ⊕ c)). */
export function addBits(b: CircuitBuilder, x: Wire[], y: Wire[], cin: Wire = ZERO): Wire[] {
  if (x.length !== y.length) throw new Error(`addBits: widths ${x.length} and ${y.length} differ`);
  const k = x.length,
    s: Wire[] = [];
  let c = cin;
  for (let i = 0; i < k; i++) {
    const xc = b.xor(x[i], c);
    s.push(b.xor(xc, y[i]));
    if (i < k - 1) c = b.xor(c, b.and(xc, b.xor(y[i], c)));
  }
  return s;
}

/** x - y mod 2^k = x + ~y + 1. */
export function subBits(b: CircuitBuilder, x: Wire[], y: Wire[]): Wire[] {
  return addBits(
    b,
    x,
    y.map((w) => b.not(w)),
    ONE,
  );
}

export interface RescaleOptions {
  /** Ring bit width (2..64). */
  k: number;
  /** Fractional bits dropped by the arithmetic shift (0 = none). */
  f?: number;
}

function checkF(k: number, f: number, what: string): void {
  checkRingBits(k, what);
  if (!Number.isInteger(f) || f < 0 || f >= k)
    throw new Error(`${what}: truncation f=${f} must be an integer in [0, k) with k=${k}`);
}

/** A builder with the inputs a, r (garbler) and b (evaluator) of k bits, and x = a + b. */
function rescaleInputs(k: number, f: number, what: string): { bld: CircuitBuilder; r: Wire[]; x: Wire[] } {
  checkF(k, f, what);
  const bld = new CircuitBuilder();
  const a = bld.input('a', 'garbler', k);
  const r = bld.input('r', 'garbler', k);
  const bb = bld.input('b', 'evaluator', k);
  return { bld, r, x: addBits(bld, a, bb) };
}

/** z = (ReLU(a + b) >> f) - r mod 2^k. */
export function reluCircuit({ k, f = 0 }: RescaleOptions): Circuit {
  const { bld, r, x } = rescaleInputs(k, f, 'reluCircuit');
  const pos = bld.not(x[k - 1]);
  // y = x ∧ ¬sign; y's sign bit is always 0, so y >> f keeps bits f..k-2 and zero-fills the top.
  const yt: Wire[] = [];
  for (let i = 0; i < k; i++) yt.push(i + f < k - 1 ? bld.and(x[i + f], pos) : ZERO);
  bld.output('z', subBits(bld, yt, r));
  return bld.build(`relu.k${k}.f${f}`);
}

/** z = (x >> f) - r mod 2^k with x = a + b read as signed (arithmetic shift): rescale without ReLU. */
export function truncCircuit({ k, f = 0 }: RescaleOptions): Circuit {
  const { bld, r, x } = rescaleInputs(k, f, 'truncCircuit');
  const xt: Wire[] = [];
  for (let i = 0; i < k; i++) xt.push(x[Math.min(i + f, k - 1)]);
  bld.output('z', subBits(bld, xt, r));
  return bld.build(`trunc.k${k}.f${f}`);
}
