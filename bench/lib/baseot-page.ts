// The page side of `node dist/bench/baseot.js --browser`: bundled with the browser crypto back-end (WebCrypto ECDH)
// and run in headless Chromium; sets globalThis.baseOtBench(count, reps) -> rows (wall time only).
import { channelPair } from '../../src/pi/transport/channel.js';
import { p256Backend } from '../../src/pi/crypto/backend.js';
import { measure, variants } from './baseot-variants.js';

(globalThis as { baseOtBench?: unknown }).baseOtBench = (count: number, reps: number) =>
  measure(variants(p256Backend, 'p256-web'), count, reps, channelPair, null);
