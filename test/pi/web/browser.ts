// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core for the browser client's tests: a fresh
// empty profile per launch, and the test server's self-signed certificate trusted by pinning its public key
// (--ignore-certificate-errors-spki-list), not by ignoring certificate errors.
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (what Chromium's SPKI list takes). */
export function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium headless with the project's flags, trusting only `certPem` beyond the system's roots. */
export async function launchBrowser(certPem: string): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'deepreduce-chromium-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--ignore-certificate-errors-spki-list=${spkiHash(certPem)}`,
  ];
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args,
      timeout: 60_000,
    });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  return {
    context,
    close: async () => {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}
