// The public model description the web server gives the page (/model.json); no Node API (the page imports its type).

/** What the page learns before a session: the model's public input transform and size (all of it is in the plan too). */
export interface WebModelInfo {
  arch: string;
  input: { shape: number[]; mean: number[]; std: number[]; padFrom?: number; dataset?: string; classNames?: string[] };
  classes: number;
  relus: number;
  culledSites: number;
  digest: string;
  /** The protocols this server runs (the page asks for them in its hello). */
  preprocess: string;
  relu: string;
  gallery: { url: string; label: number }[];
  /** The page honours its test-only parameters (?seed=, ?craft=) only when the server says so (tests); never from the CLI. */
  testHooks: boolean;
}

/**
 * The ReLU protocol the page asks for unless the server fixes one (`pi serve --relu`): the OT ReLU keeps the client's
 * protocol state at a few MB (C100_12K: 3.7 MB at peak against 79.5 MB of garbled tables with gc; docs/pi-web.md),
 * and 'ot' keeps the online phase shorter than 'ot-online' for about the same state.
 */
export const WEB_RELU = 'ot';
