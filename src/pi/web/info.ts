// The public model description the web server gives the page (/model.json); no Node API (the page imports its type).

/** What the page learns before a session: the model's public input transform and size (all of it is in the plan too). */
export interface ModelInfo {
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
