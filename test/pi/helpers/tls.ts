// TLS identities for tests (EC P-256, self-signed; made once per test process) and the security options built on them.
import { generateIdentity, type TlsIdentity } from '../../../src/pi/node/transport/tls.js';
import type { ClientSecurity, ServerSecurity } from '../../../src/pi/node/transport/tcp.js';

const made = new Map<string, Promise<TlsIdentity>>();

/** A fresh identity per name (the same one for every call with that name in this process). */
export function identity(name: string): Promise<TlsIdentity> {
  let p = made.get(name);
  if (!p) made.set(name, (p = generateIdentity({ commonName: name })));
  return p;
}

export const serverSecurity = (id: TlsIdentity): ServerSecurity => ({ tls: { cert: id.cert, key: id.key } });
export const pinned = (id: TlsIdentity): ClientSecurity => ({ tls: { pin: id.fingerprint } });
