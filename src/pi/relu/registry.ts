// The ReLU protocols by their `--relu` name.
import type { ReluProtocol } from './index.js';
import { gcRelu } from './gc/protocol.js';
import { otOnlineRelu, otRelu } from './ot/protocol.js';

const PROTOCOLS: Record<string, ReluProtocol> = { gc: gcRelu, ot: otRelu, 'ot-online': otOnlineRelu };

export const RELU_PROTOCOLS = Object.keys(PROTOCOLS);

/** The protocol a client asks for unless told otherwise (docs/pi.md: why OT). */
export const DEFAULT_RELU = 'ot';

export function makeReluProtocol(name: string): ReluProtocol {
  const p = PROTOCOLS[name];
  if (!p) throw new Error(`unknown ReLU protocol '${name}'; valid: ${RELU_PROTOCOLS.join(', ')}`);
  return p;
}
