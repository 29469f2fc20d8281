// The page side of `node dist/bench/baseot.js --browser`: bundled with the browser crypto back-end (WebCrypto ECDH)
// and run in headless Chromium; sets globalThis.baseOtBench(count, reps) -> rows (wall time only).
// Usage: node dist/bench/baseot.js --browser (run alone under Node it only answers --help)
import { channelPair } from '../src/pi/transport/channel.js';
import { p256Backend } from '../src/pi/crypto/backend.js';
import { measure, variants } from './baseot-variants.js';

if (typeof process !== 'undefined' && process.argv?.includes('--help')) {
  console.log(
    'Usage: node dist/bench/baseot.js --browser (bundles bench/baseot-page.ts and runs it in headless Chromium)',
  );
  process.exit(0);
}

(globalThis as { baseOtBench?: unknown }).baseOtBench = (count: number, reps: number) =>
  measure(variants(p256Backend, 'p256-web'), count, reps, channelPair, null);
