// Shared by the export tests: networks with non-trivial BN statistics, our logits, onnxruntime's.
import * as ort from 'onnxruntime-node';
import { BatchNorm2d, manualSeed, noGrad, rand, randn, setNumThreads, tensor, tidy } from '../../src/engine/index.js';
import { buildNetwork, type NetSpec, type Network } from '../../src/models/index.js';
import { decodeOnnx, encodeOnnx, ONNX_FLOAT } from '../../src/export/onnx.js';

// Test files run in parallel on few shared cores: one libtorch thread avoids OpenMP spin-waits that cost 10-50x.
setNumThreads(1);

/**
 * Builds spec's network (seeded) with random BN affine parameters and running statistics taken from one batch of
 * random inputs, so that activations stay O(1) through the depth as in a trained network. Eval mode.
 */
export function makeNet(spec: NetSpec, seed = 1): Network {
  manualSeed(seed);
  const net = buildNetwork(spec);
  const bns = [...net.modules()].map(([, m]) => m).filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
  noGrad(() =>
    tidy(() => {
      for (const m of bns) {
        m.weight.copy_(rand([m.channels]).add(0.5));
        m.bias.copy_(randn([m.channels]).mul(0.2));
        Object.assign(m, { momentum: 1 }); // the running statistics become this batch's
      }
      net.train().forward(randn(dims(spec, 8)));
      for (const m of bns) Object.assign(m, { momentum: 0.1 });
    }),
  );
  return net.eval();
}

export const dims = (spec: NetSpec, n: number) => [n, spec.inChannels, spec.inputSize, spec.inputSize];

export function randomInput(spec: NetSpec, n: number): Float32Array {
  return tidy(() => randn(dims(spec, n)).toArray() as Float32Array);
}

/** deepreduce's own eval-mode inference. */
export function ourLogits(net: Network, x: Float32Array, n: number): Float32Array {
  return tidy(() =>
    noGrad(
      () =>
        net
          .eval()
          .forward(tensor(x, dims(net.spec, n)))
          .toArray() as Float32Array,
    ),
  );
}

export function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  // one thread: the test machine's cores are shared
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
}

export async function ortLogits(
  s: ort.InferenceSession,
  spec: NetSpec,
  x: Float32Array,
  n: number,
): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const r = await s.run({ input: new ort.Tensor('float32', x, dims(spec, n)) });
  const out = r.logits!;
  return { data: out.data as Float32Array, dims: out.dims };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Runs the model in onnxruntime with every Relu node's output also fetched (added as graph outputs) and returns,
 * per Relu node name, its output elements per image as onnxruntime computed them.
 */
export async function ortReluElements(bytes: Uint8Array, spec: NetSpec, n = 2): Promise<Map<string, number>> {
  const model = decodeOnnx(bytes);
  const relus = model.graph.node.filter((v) => v.op_type === 'Relu');
  model.graph.output.push(
    ...relus.map((v) => ({ name: v.output[0]!, type: { tensor_type: { elem_type: ONNX_FLOAT } } })),
  );
  const s = await session(encodeOnnx(model));
  const r = await s.run({ input: new ort.Tensor('float32', randomInput(spec, n), dims(spec, n)) });
  const out = new Map<string, number>();
  for (const v of relus) {
    const d = r[v.output[0]!]!.dims;
    if (d[0] !== n) throw new Error(`Relu ${v.name}: batch dimension ${d[0]}, expected ${n}`);
    out.set(
      v.name,
      d.slice(1).reduce((a, b) => a * b, 1),
    );
  }
  return out;
}
