// The Reflect metadata calls that @peculiar/x509's dependency tsyringe needs at load (it refuses to load without a
// polyfill; the project has none installed). Installed only where no polyfill is present: adding the
// `reflect-metadata` package and importing it here instead would replace this file.
type Meta = Map<unknown, unknown>;
const store = new WeakMap<object, Meta>();
const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  const own = (target: object, key: unknown) => store.get(target)?.get(key);
  R.defineMetadata = (key: unknown, value: unknown, target: object) => {
    let m = store.get(target);
    if (!m) store.set(target, (m = new Map()));
    m.set(key, value);
  };
  R.getOwnMetadata = own;
  R.getMetadata = (key: unknown, target: object): unknown => {
    for (let t: object | null = target; t; t = Object.getPrototypeOf(t) as object | null) {
      const v = own(t, key);
      if (v !== undefined) return v;
    }
    return undefined;
  };
}
