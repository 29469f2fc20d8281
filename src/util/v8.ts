// V8 settings of our processes (the CLI, and the benchmarks' client processes), applied once at start-up.
import { setFlagsFromString } from 'node:v8';

/**
 * Concurrent marking off. Each heavy command already keeps every core busy (libtorch's threads, the PI server's
 * worker threads, and in a local session the other party), and a PI party allocates gigabytes of short-lived
 * buffers (node:crypto returns a fresh one per AES call; every received frame), which starts an incremental marking
 * about every 64 MB. Their helper threads then took the cores the parties needed: full ResNet18 under `ot` on the LAN
 * profile took 11.9 s with them and 9.4 s without on a 2-core machine (docs/pi.md, "Process settings").
 * DEEPREDUCE_V8_CONCURRENT_MARKING=1 keeps V8's default (bench/pi.ts --v8-concurrent-marking compares the two).
 */
export function applyV8Settings(): void {
  if (process.env.DEEPREDUCE_V8_CONCURRENT_MARKING === '1') return;
  setFlagsFromString('--no-concurrent-marking');
}
