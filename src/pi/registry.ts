// The one registry of a session's back ends: the ReLU protocols (relu/registry.ts) and the linear-layer preprocessors
// (linear/index.ts) are both picked by name from one of these, each entry a factory (a preprocessor keeps session
// state, so each session makes its own; a ReLU protocol is shared).

export class Registry<T, O = void> {
  constructor(
    /** What an entry is, for errors ('ReLU protocol', 'preprocessor'). */
    readonly kind: string,
    private readonly entries: Readonly<Record<string, (o: O) => T>>,
    /** The entry a session uses unless told otherwise. */
    readonly defaultName: string,
  ) {
    if (!entries[defaultName]) throw new Error(`${kind} registry: the default '${defaultName}' is not an entry`);
  }

  /** The names, in declaration order (the CLI's choices). */
  get names(): string[] {
    return Object.keys(this.entries);
  }

  make(name: string, o: O): T {
    const f = Object.hasOwn(this.entries, name) ? this.entries[name] : undefined;
    if (!f) throw new Error(`unknown ${this.kind} '${name}'; valid: ${this.names.join(', ')}`);
    return f(o);
  }
}
