// Partial ReLU sites (learned masks below the site level): a ReLU protocol runs on the kept elements only, gathered
// from each party's share; the other elements pass through as at a culled site, by local share truncation with the
// same shift. Protocol-agnostic, so every protocol's bytes, OTs and garbled tables scale with the kept count; the
// ReluSite a protocol sees has size = the kept count. Browser-safe (the client half runs here).
import { r64Gather, r64Scatter, truncClientShare, truncServerShare, type R64 } from '../fixed.js';
import type { ReluClient, ReluServer, ReluSite } from './index.js';

/** Online, server: its share a of the whole site -> its output share (the protocol's on kept elements). */
export async function serverOnlinePartial(
  relu: ReluServer,
  site: ReluSite,
  elements: Uint32Array | null,
  a: R64,
): Promise<R64> {
  if (!elements) return relu.online(site, a);
  const z = await relu.online(site, r64Gather(a, elements));
  return r64Scatter(truncServerShare(a, site.shift), elements, z);
}

/** Offline, client: its output share of a partial site, from its input share b and the kept elements' masks r. */
export function clientPartialShare(site: ReluSite, elements: Uint32Array, b: R64, r: R64): R64 {
  return r64Scatter(truncClientShare(b, site.shift), elements, r);
}

/** Offline, client: the protocol's offline part on the kept elements of its input share b, with their masks r. */
export async function clientOfflinePartial(
  relu: ReluClient,
  site: ReluSite,
  elements: Uint32Array | null,
  b: R64,
  r: R64,
): Promise<void> {
  await relu.offline(site, elements ? r64Gather(b, elements) : b, r);
}
