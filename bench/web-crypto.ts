// Runs in the browser (bench/browser.ts bundles it and evaluates it in a page of the server's origin): AES throughput
// of WebCrypto (AES-CTR, native but asynchronous; it has no ECB mode) against @noble/ciphers (synchronous pure JS;
// ECB for fixed-key AES, CTR for the PRG) at the batch sizes the protocol uses.
// Usage: node dist/bench/browser.js (it runs this file in the page; run alone under Node it only answers --help)
import { ctr, ecb } from '@noble/ciphers/aes.js';

const USAGE =
  'Usage: node dist/bench/browser.js (it bundles bench/web-crypto.ts and runs it in headless Chromium: AES throughput of WebCrypto against @noble/ciphers)';
if (typeof process !== 'undefined' && process.argv?.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}

export interface CryptoRow {
  bytes: number;
  nobleEcbMBs: number;
  nobleCtrMBs: number;
  webcryptoCtrMBs: number;
}

async function rate(bytes: number, f: () => unknown): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 300 || n < 3) {
    await f();
    n++;
  }
  return (n * bytes) / ((performance.now() - t0) / 1e3) / 1e6;
}

export async function run(): Promise<CryptoRow[]> {
  const key = globalThis.crypto.getRandomValues(new Uint8Array(16));
  const wk = await globalThis.crypto.subtle.importKey('raw', key, 'AES-CTR', false, ['encrypt']);
  const rows: CryptoRow[] = [];
  // 2 KiB: one IKNP column of a 16K-OT batch (PRG); 16-256 KiB: crHashBatch / garbling batches (fixed-key AES); 4 MiB: large fills.
  for (const bytes of [2048, 16384, 262144, 4 << 20]) {
    const data = new Uint8Array(bytes);
    const counter = new Uint8Array(16);
    rows.push({
      bytes,
      nobleEcbMBs: await rate(bytes, () => ecb(key, { disablePadding: true }).encrypt(data)),
      nobleCtrMBs: await rate(bytes, () => ctr(key, counter).encrypt(data)),
      webcryptoCtrMBs: await rate(bytes, () =>
        globalThis.crypto.subtle.encrypt({ name: 'AES-CTR', counter, length: 64 }, wk, data),
      ),
    });
  }
  return rows;
}
