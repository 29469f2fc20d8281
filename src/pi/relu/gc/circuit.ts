// The ReLU circuit in Delphi's orientation. The server garbles and decodes; the client evaluates and never sees a
// decode bit. Inputs: garbler 'a' (the server's share, low `width` bits), evaluator 'b' (the client's share, low
// `width` bits, known offline), evaluator 'r' (the client's fresh 64-bit mask for the next layer). Output
//   z = (ReLU(x) >> shift) - r mod 2^64,   x = a + b mod 2^width read as signed,
// so the server ends up with z = y - r and the client with r: a fresh additive sharing of y = ReLU(x) >> shift.
// Reading only the low `width` bits is exact while |x| < 2^(width-1) (the plan leaves reluIntBits of headroom
// above the scale; the plaintext reference reports the largest |x| per site).
// AND gates: (width-1) adder + (width-1-shift) select + 63 subtractor; width 45, shift 12: 139.
import { CircuitBuilder, ZERO, type Circuit, type Wire } from '../../gc/circuit.js';
import { addBits, subBits } from '../../gc/relu.js';

const cache = new Map<string, Circuit>();

export function delphiReluCircuit(width: number, shift: number): Circuit {
  if (!Number.isInteger(width) || width < 2 || width > 64)
    throw new Error(`delphiReluCircuit: width ${width} must be an integer in [2, 64]`);
  if (!Number.isInteger(shift) || shift < 0 || shift > width - 2)
    throw new Error(`delphiReluCircuit: shift ${shift} must be in [0, width-2]`);
  const key = `${width}/${shift}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const bld = new CircuitBuilder();
  const a = bld.input('a', 'garbler', width);
  const b = bld.input('b', 'evaluator', width);
  const r = bld.input('r', 'evaluator', 64);
  const x = addBits(bld, a, b);
  const pos = bld.not(x[width - 1]!);
  const y: Wire[] = [];
  for (let i = 0; i < 64; i++) y.push(i + shift < width - 1 ? bld.and(x[i + shift]!, pos) : ZERO);
  bld.output('z', subBits(bld, y, r));
  const c = bld.build(`delphi-relu.w${width}.s${shift}`);
  cache.set(key, c);
  return c;
}
