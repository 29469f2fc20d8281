// Correctness of the private-inference protocol on a trained model: for N test images, the secure logits against
// the fixed-point plaintext reference (max |diff| in ULPs of the output scale) and top-1 agreement with the float
// model. Usage: node dist/bench/pi-correctness.js --model DIR [--n 1000] [--dataset fashion-mnist] [--data DIR] [--json]
import { parseArgs } from 'node:util';
import { noGrad, tensor, tidy } from '../src/engine/index.js';
import { describeNetwork, runGraph } from '../src/models/index.js';
import { loadModelDir } from '../src/train/modeldir.js';
import { serverModelFromDir, datasetImage } from '../src/pi/bench.js';
import { referenceForward } from '../src/pi/plan.js';
import { runClient, serveClient } from '../src/pi/protocol.js';
import { channelPair } from '../src/pi/transport.js';
import { Dealer } from '../src/pi/dealer.js';
import { quantize, r64ToBig } from '../src/pi/fixed.js';

const { values: a } = parseArgs({ options: { model: { type: 'string' }, n: { type: 'string', default: '1000' }, dataset: { type: 'string', default: 'fashion-mnist' }, data: { type: 'string' }, json: { type: 'boolean' } } });
if (!a.model) throw new Error('usage: pi-correctness --model DIR [--n 1000] [--dataset fashion-mnist]');
const N = Number(a.n);
const model = serverModelFromDir(a.model);
const { net } = loadModelDir(a.model);
const nodes = describeNetwork(net);
const plan = model.plan;
// The trusted dealer (a third party; in this process over channel pairs, as are the client and the server).
const dealer = new Dealer(model);
const [c, h, w] = plan.ops[0]!.shape as [number, number, number];
const argmax = (v: ArrayLike<number>) => { let b = 0; for (let i = 1; i < v.length; i++) if (v[i]! > v[b]!) b = i; return b; };

let maxUlp = 0n, agreeFloat = 0, agreeRef = 0, correct = 0, maxReluBits = -64, maxCullBits = 0, onlineMs = 0, offlineMs = 0;
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const { x, label } = datasetImage(plan, a.dataset!, i, a.data);
  const [s, cl] = channelPair();
  const [, r] = await Promise.all([serveClient(s, model, { dealer: dealer.link() }), runClient(cl, x, { dealer: dealer.link() })]);
  const ref = referenceForward(model, quantize(x, plan.fixed.f));
  const sec = r64ToBig(r.out), rf = r64ToBig(ref.out);
  sec.forEach((v, k) => { const d = v > rf[k]! ? v - rf[k]! : rf[k]! - v; if (d > maxUlp) maxUlp = d; });
  for (const b of ref.reluBits) maxReluBits = Math.max(maxReluBits, b.bits - b.width);
  for (const b of ref.cullBits) maxCullBits = Math.max(maxCullBits, b.bits);
  const fl = tidy(() => noGrad(() => runGraph(nodes, tensor(x, [1, c, h, w])).toFloat32()));
  const ps = argmax(r.logits);
  if (ps === argmax(fl)) agreeFloat++;
  if (ps === argmax(ref.logits)) agreeRef++;
  if (ps === label) correct++;
  onlineMs += r.client.phases.online.ms;
  offlineMs += r.client.phases.offline.ms;
  if (!a.json && ((i + 1) % 10 === 0 || i + 1 === N)) process.stderr.write(`\r${i + 1}/${N} images, max diff ${maxUlp} ULPs, top-1 agreement with float ${(100 * agreeFloat / (i + 1)).toFixed(2)}%   `);
}
const res = {
  model: a.model, images: N, relus: plan.relus, culledSites: plan.culledSites, outputScale: plan.ops[plan.ops.length - 1]!.scale,
  maxDiffUlps: Number(maxUlp), maxDiffLogits: Number(maxUlp) / 2 ** plan.ops[plan.ops.length - 1]!.scale, top1AgreementFloat: agreeFloat / N, top1AgreementReference: agreeRef / N, secureAccuracy: correct / N,
  // headroom: largest |x| bits at a ReLU minus the circuit width (must be < -1); largest |x| bits at a local truncation
  reluHeadroomBits: -maxReluBits, maxCullBits, meanOfflineMs: offlineMs / N, meanOnlineMs: onlineMs / N, wallS: (Date.now() - t0) / 1e3,
};
process.stderr.write('\n');
process.stdout.write(a.json ? `${JSON.stringify(res, null, 2)}\n` : Object.entries(res).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
model.dispose();
net.dispose();
