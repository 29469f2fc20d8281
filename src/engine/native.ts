import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** Opaque handle to a libtorch tensor owned by the addon. */
export interface NativeTensor {
  readonly __native: unique symbol;
}

/** The addon's generic op surface (see native/addon.cc). Arguments mirror libtorch's. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Native = Record<string, (...args: any[]) => any>;

/** Threads default to every core (DEEPREDUCE_THREADS overrides). */
export function defaultThreads(): number {
  const env = Number(process.env.DEEPREDUCE_THREADS);
  return Number.isFinite(env) && env > 0 ? Math.floor(env) : availableParallelism();
}

function packageRoot(): string {
  // dist/src/engine/native.js or src/engine/native.ts: walk up to the folder holding package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('deepreduce: cannot find the package root (package.json beside native/)');
}

function load(): Native {
  const root = packageRoot();
  const file = join(root, 'native', 'build', 'Release', 'deepreduce_native.node');
  if (!existsSync(file)) {
    throw new Error(
      `deepreduce: the libtorch addon is not built (${file} missing). Run 'npm run build' ` +
        `(it needs Debian's libtorch-dev: 'apt-get install libtorch-dev', or LIBTORCH=<LibTorch dir>).`,
    );
  }
  // libgomp reads its thread count when libtorch loads; its default here can be 1 thread.
  if (!process.env.OMP_NUM_THREADS) process.env.OMP_NUM_THREADS = String(defaultThreads());
  const require = createRequire(import.meta.url);
  try {
    const addon = require(file) as Native;
    addon.setNumThreads!(defaultThreads());
    return addon;
  } catch (e) {
    throw new Error(
      `deepreduce: cannot load the libtorch addon ${file}: ${(e as Error).message}. ` +
        `Is libtorch installed ('apt-get install libtorch-dev') and, for LIBTORCH builds, on the library path?`,
    );
  }
}

// Loaded on first use, not on import: commands that never touch a tensor (pi query, count, zoo list) then start
// without libtorch (about a second of CPU and 200 MB here).
let loaded: Native | null = null;
export const native: Native = new Proxy({} as Native, {
  get: (_t, k) => (loaded ??= load())[k as string],
  has: (_t, k) => k in (loaded ??= load()),
});
