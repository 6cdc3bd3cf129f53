/**
 * `target` whose `method` fails with `error` at its first call and works after (the store busy or
 * away a moment); every other member is the real one's, bound to it. `calls` counts the method's
 * calls, the failed one included.
 */
export function failingOnce<T extends object>(
  target: T,
  method: keyof T & string,
  error: Error,
): { readonly object: T; readonly calls: () => number } {
  let calls = 0;
  const object = new Proxy(target, {
    get(real, key) {
      const value = Reflect.get(real, key, real) as unknown;
      if (typeof value !== 'function') return value;
      if (key !== method) return value.bind(real);
      return async (...args: unknown[]) => {
        if (calls++ === 0) throw error;
        return (value as (...a: unknown[]) => unknown).apply(real, args);
      };
    },
  });
  return { object, calls: () => calls };
}
