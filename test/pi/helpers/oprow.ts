// A per-op row of a `pi bench` report for cost-model tests: zeros everywhere but the fields given.
import type { OpRow } from '../../../src/pi/node/bench.js';

const zero = () => ({ ms: 0, cToS: 0, sToC: 0, rounds: 0 });

export const opRow = (name: string, kind: string, o: Partial<OpRow>): OpRow => ({
  op: 0,
  name,
  kind,
  relus: 0,
  macs: 0,
  serverOnlineMs: 0,
  prepBytes: 0,
  heMs: { client: 0, server: 0 },
  offline: zero(),
  online: zero(),
  ...o,
});
