// The library face of deepreduce (`import { count, train, reduce, servePi, query } from 'deepreduce'`): the same
// operations as the CLI's commands, as typed functions. Everything here runs in Node (libtorch through the addon);
// the browser client is src/web, on pi's browser-safe core.
import { countRelus, type ReluCount } from './models/count.js';
import { specFromOptions, type SpecOptions } from './models/options.js';
import { connectChannel, type ClientSecurity, type ConnectOptions } from './pi/node/transport/tcp.js';
import { runClient, type ClientResult, type ClientSessionOptions } from './pi/protocol.js';
import type { PublicPlan } from './pi/plan.js';

// ---------------------------------------------------------------------------------------------- models, counting
export type { NetSpec } from './models/spec.js';
export { ARCH_NAMES, specFor } from './models/spec.js';
export { presetNames, presetSpec } from './models/presets.js';
export { specFromOptions, type SpecOptions } from './models/options.js';
export type { ReluCount, SiteCount, StageCount, LayerCost } from './models/count.js';

/** ReLUs per site and stage, MACs per layer of a network (`deepreduce count`): a preset or an architecture, a mask. */
export function count(o: SpecOptions): ReluCount {
  return countRelus(specFromOptions(o).spec);
}

// ---------------------------------------------------------------------------------------------- training, reduction
export {
  trainModel as train,
  defaultTrainConfig,
  readTrainResult,
  type TrainConfig,
  type TrainHooks,
  type TrainSummary,
} from './train/run.js';
export { loadModelDir, type ModelInfo } from './train/modeldir.js';
export { reduce, defaultReduceConfig, summaryLines, type ReduceConfig, type ReduceResults } from './reduce/pipeline.js';
export { exportModelDirToOnnx as exportOnnx, type ModelDirExport, type OnnxExportOptions } from './export/onnx.js';
export { importModel, type ImportOptions, type ImportResult } from './export/import.js';

// ---------------------------------------------------------------------------------------------- private inference
export { serverModelFromDir, serverModelRandom, datasetImage, fileImage } from './pi/node/load.js';
export { servePi, SessionPool, type PiServer, type ServeOptions } from './pi/node/serve.js';
export { generateIdentity, certFingerprint, type TlsIdentity } from './pi/node/transport/tls.js';
export { connectChannel, type ClientSecurity, type ServerSecurity } from './pi/node/transport/tcp.js';
export {
  runClient,
  serveClient,
  type ClientResult,
  type ClientSessionOptions,
  type ServerSessionOptions,
  type PartyReport,
} from './pi/protocol.js';
export type { PublicPlan, ServerModel } from './pi/plan.js';
export { RELU_PROTOCOLS, DEFAULT_RELU } from './pi/relu/registry.js';
export { PREPROCESSORS, DEFAULT_PREPROCESS } from './pi/linear/index.js';
export { estimateLatency, loadCostModel, defaultCostModel, type CostModel } from './pi/node/costmodel.js';

/**
 * One private query (`deepreduce pi query`): connects to a `servePi` server (TLS: `{ tls: { ca } }` or `{ tls: { pin } }`;
 * `{ insecure: true }` for plain TCP), runs the client's half of the protocol on `image` (the preprocessed CHW input,
 * or a function of the plan that makes it) and closes the connection.
 */
export async function query(
  host: string,
  port: number,
  image: ArrayLike<number> | ((plan: PublicPlan) => ArrayLike<number>),
  security: ClientSecurity,
  o: ClientSessionOptions & { connect?: ConnectOptions } = {},
): Promise<ClientResult> {
  const { connect, ...session } = o;
  const ch = await connectChannel(host, port, security, connect);
  try {
    return await runClient(ch, image, session);
  } finally {
    ch.close();
  }
}
