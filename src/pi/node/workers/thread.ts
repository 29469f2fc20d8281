// A server worker thread (pool.ts): HE output groups and KK13 pad planes, one request at a time.
import { parentPort, workerData } from 'node:worker_threads';
import { HeEngine } from '../../he/kernels.js';
import { ConvLayout } from '../../he/layout.js';
import { loadPublicKey } from '../../he/rlwe.js';
import type { HeParams } from '../../he/params.js';
import { Prg } from '../../crypto/prg.js';
import { groupResponses, loadInputs } from '../../linear/he/preprocess.js';
import { kkPadPlanes } from '../../ot/kkot.js';
import type { WorkerReply, WorkerRequest } from './pool.js';

const params = (workerData as { params: HeParams }).params;
const engine = HeEngine.create(params);

// Requests run one after another (a chain), so that two layers never share the engine's scratch memory at once.
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (m: WorkerRequest) => {
  chain = chain
    .then(() => run(m))
    .catch((e: Error) => post({ id: m.id, error: `${m.kind === 'he' ? m.job.name : 'KK13 pads'}: ${e.message}` }));
});

const post = (r: WorkerReply, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(r, transfer);

async function run(r: WorkerRequest): Promise<void> {
  if (r.kind === 'kk') {
    const planes = kkPadPlanes(r.tab, r.q, r.first, r.m, r.N, r.planes);
    post({ id: r.id, planes }, [planes.buffer as ArrayBuffer]);
    return;
  }
  const { id, job, ogs } = r,
    e = await engine,
    base = e.mark();
  try {
    const L = new ConvLayout(job.g, job.pk, params.n, job.name);
    const pk = await loadPublicKey(e, job.pub);
    const inputs = loadInputs(e, job.c0s, job.as);
    // the layer's coins: an AES-CTR stream keyed by the 16 bytes the session drew for it
    const rand = new Prg(job.seed);
    for (const og of ogs) {
      const cts = groupResponses(e, pk, L, job.weights, inputs, og, job.s, job.floodBits, rand, job.kernelKey);
      post(
        { id, og, cts },
        cts.flatMap((c) => [c.c1.buffer as ArrayBuffer, c.c0.buffer as ArrayBuffer]),
      );
    }
  } finally {
    e.release(base);
  }
}
