// Keys, certificates and pins for the TLS links (Node): `deepreduce pi keygen` makes an EC P-256 key and a
// self-signed certificate (@peculiar/x509 on WebCrypto) whose SubjectAltName covers localhost, 127.0.0.1, ::1 and
// the names given. Parties verify it by the certificate file (as a CA) or by its SHA-256 fingerprint (a pin).
import { createHash, X509Certificate, webcrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import 'reflect-metadata'; // @peculiar/x509's dependency tsyringe needs the Reflect metadata API
import * as x509 from '@peculiar/x509';

export interface TlsIdentity {
  /** PEM certificate and PKCS#8 PEM private key. */
  cert: string;
  key: string;
  /** SHA-256 of the certificate (DER), lowercase hex: what `--pin` takes. */
  fingerprint: string;
}

/** SHA-256 of a certificate (DER bytes, or PEM text), lowercase hex without separators. */
export function certFingerprint(cert: Uint8Array | string): string {
  const der = typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return createHash('sha256').update(der).digest('hex');
}

/**
 * Why a certificate (DER) is not valid now ('expired on ...', 'not yet valid (from ...)'), or null. A pin replaces the
 * chain check, not the validity period: an expired pinned certificate is refused as --server-cert refuses it.
 */
export function certValidityProblem(der: Uint8Array, now = Date.now()): string | null {
  const c = new X509Certificate(der);
  const from = Date.parse(c.validFrom),
    to = Date.parse(c.validTo);
  if (!(now >= from)) return `the certificate is not yet valid (valid from ${c.validFrom})`;
  if (!(now <= to)) return `the certificate expired on ${c.validTo}`;
  return null;
}

/** A SHA-256 pin as 64 lowercase hex digits (':' and case ignored); throws naming `what` otherwise. */
export function checkPin(pin: string, what: string): string {
  const p = pin.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(p))
    throw new Error(`${what}: '${pin}' is not a SHA-256 fingerprint (64 hex digits, ':' allowed)`);
  return p;
}

/** The subjectAltName entries of a certificate for `names` (IP addresses as IP entries, the rest as DNS). */
function altNames(names: string[]): x509.SubjectAlternativeNameExtension {
  const all = [...new Set(['localhost', '127.0.0.1', '::1', ...names])];
  return new x509.SubjectAlternativeNameExtension(
    all.map((n) => ({ type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n })),
  );
}

/**
 * A fresh EC P-256 key and a self-signed certificate valid for `days` (default 365), usable as a TLS server and
 * client certificate, for localhost, 127.0.0.1, ::1 and `names`.
 */
export async function generateIdentity(
  o: { names?: string[]; days?: number; commonName?: string; notBefore?: Date } = {},
): Promise<TlsIdentity> {
  const crypto = webcrypto;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const days = o.days ?? 365;
  if (!(Number.isInteger(days) && days >= 1 && days <= 3650))
    throw new Error(`keygen: days ${days} must be an integer in [1, 3650]`);
  for (const n of o.names ?? [])
    if (!isIP(n) && !/^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$/.test(n))
      throw new Error(`keygen: '${n}' is neither an IP address nor a DNS name`);
  const notBefore = o.notBefore ?? new Date(Date.now() - 60_000); // tests make expired / future certificates with it
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(16)))
        .toString('hex')
        .replace(/^[89a-f]/, '7'),
      name: `CN=${o.commonName ?? 'deepreduce-pi'}`,
      notBefore,
      notAfter: new Date(notBefore.getTime() + days * 86_400_000),
      signingAlgorithm: alg,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        altNames(o.names ?? []),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  const pem = cert.toString('pem').replace(/\r\n/g, '\n').replace(/\n?$/, '\n');
  return { cert: pem, key, fingerprint: certFingerprint(pem) };
}

/** Reads a PEM file of the given kind, with errors naming the file and the flag. */
export function readPem(file: string, kind: 'certificate' | 'private key', flag: string): string {
  if (!existsSync(file)) throw new Error(`${flag} ${file}: file not found`);
  const text = readFileSync(file, 'utf8');
  const marker = kind === 'certificate' ? /-----BEGIN CERTIFICATE-----/ : /-----BEGIN (EC |RSA )?PRIVATE KEY-----/;
  if (!marker.test(text)) throw new Error(`${flag} ${file}: not a PEM ${kind}`);
  if (kind === 'certificate') {
    try {
      new X509Certificate(text);
    } catch (e) {
      throw new Error(`${flag} ${file}: unreadable certificate (${(e as Error).message})`);
    }
  }
  return text;
}
