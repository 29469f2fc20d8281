// An HE worker thread (workers.ts): computes the output groups it is given, one layer job at a time.
import { parentPort, workerData } from 'node:worker_threads';
import { HeEngine } from '../../he/kernels.js';
import { ConvLayout } from '../../he/layout.js';
import { loadPublicKey, type InputCt } from '../../he/rlwe.js';
import type { HeParams } from '../../he/params.js';
import { seededRandom } from '../../random.js';
import { groupResponses, type HeLayerJob } from './preprocess.js';
import type { WorkerReply } from './workers.js';

const params = (workerData as { params: HeParams }).params;
const engine = HeEngine.create(params);

// Jobs run one after another (a chain), so that two layers never share the engine's scratch memory at once.
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (m: { id: number; job: HeLayerJob; ogs: number[] }) => {
  chain = chain.then(() => run(m)).catch((e: Error) => post({ job: m.id, error: `${m.job.name}: ${e.message}` }));
});

const post = (r: WorkerReply, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(r, transfer);

async function run({ id, job, ogs }: { id: number; job: HeLayerJob; ogs: number[] }): Promise<void> {
  const e = await engine, base = e.mark();
  try {
    const L = new ConvLayout(job.g, job.pk, params.n, job.name);
    const pk = await loadPublicKey(e, job.pub);
    const inputs: InputCt[] = job.c0s.map((c0, j) => {
      const a = e.poly(e.L, false), c = e.poly(e.L, false);
      e.words(c).set(c0);
      e.words(a).set(job.as[j]!);
      return { c0: c, a };
    });
    const rand = seededRandom(job.seed);
    for (const og of ogs) {
      const cts = groupResponses(e, pk, L, job.weights, inputs, og, job.s, job.floodBits, rand);
      post({ job: id, og, cts }, cts.flatMap((c) => [c.c1.buffer as ArrayBuffer, c.c0.buffer as ArrayBuffer]));
    }
  } finally {
    e.release(base);
  }
}
