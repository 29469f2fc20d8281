// The device a worker trains on: 'cpu', or 'cuda:N' when this build of libtorch has CUDA and that GPU answers.
import { cudaAvailable, tidy, torchVersion, zeros } from '../engine/index.js';

/** The device name libtorch will use ('cuda' means 'cuda:0'); throws saying why the device cannot be used. */
export function checkDevice(device: string): string {
  if (device === 'cpu') return device;
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) throw new Error(`--device ${device}: expected cpu or cuda:N (e.g. cuda:0)`);
  if (!cudaAvailable())
    throw new Error(
      `--device ${device}: this build of libtorch has no CUDA (libtorch ${torchVersion()} is CPU-only); ` +
        'build the addon against a CUDA LibTorch: LIBTORCH=<dir of a CUDA LibTorch> npm run build',
    );
  const d = `cuda:${m[1] ?? 0}`;
  try {
    tidy(() => zeros([1], 'float32', d).add(1).item());
  } catch (e) {
    throw new Error(
      `--device ${device}: libtorch has CUDA, but ${d} cannot be used: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  return d;
}
