// The ReLU protocols by their `--relu` name.
import type { ReluProtocol } from './index.js';
import { gcRelu } from './gc/protocol.js';
import { otOnlineRelu, otRelu, silentRelu } from './ot/protocol.js';
import { Registry } from '../registry.js';

/** The default is 'ot' (docs/pi.md: why OT). */
export const RELU_REGISTRY = new Registry<ReluProtocol>(
  'ReLU protocol',
  { gc: () => gcRelu, ot: () => otRelu, 'ot-online': () => otOnlineRelu, silent: () => silentRelu },
  'ot',
);

export const RELU_PROTOCOLS = RELU_REGISTRY.names;

/** The protocol a client asks for unless told otherwise. */
export const DEFAULT_RELU = RELU_REGISTRY.defaultName;

export const makeReluProtocol = (name: string): ReluProtocol => RELU_REGISTRY.make(name);
