// A queue worker's training process: trains the one config its worker sends, reports progress and the outcome over
// IPC, and stops when its worker dies (the job then goes to another worker, which resumes the checkpoint).
import { trainModel, type TrainConfig } from '../train/run.js';
import { isRetryable, type ChildMessage } from './spec.js';

const send = (m: ChildMessage): Promise<void> =>
  new Promise((res) => (process.connected ? process.send!(m, () => res()) : res()));

if (!process.send) {
  process.stderr.write('deepreduce: this is the training process of `deepreduce worker`; it is not run directly\n');
  process.exit(2);
}
process.on('disconnect', () => process.exit(1));
process.once('message', (config: TrainConfig) => {
  let last = 0;
  trainModel(config, {
    log: (line) => void send({ type: 'log', line }),
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 1000 && p.seen < p.total) return;
      last = now;
      void send({ type: 'progress', ...p });
    },
  }).then(
    async (summary) => {
      await send({ type: 'done', summary });
      process.exit(0);
    },
    async (e: Error) => {
      await send({ type: 'error', message: e.message, retryable: isRetryable(e) });
      process.exit(1);
    },
  );
});
