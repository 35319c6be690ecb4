/**
 * Key layout shared by the Redis and Upstash stores (docs/store-contract.md, "Concepts"):
 * `<prefix><base>:window`, `<prefix><base>:<counter>`, `...:<counter>:prev`, `...:<counter>:holds`,
 * `...:<counter>:held`, and gauges at `<prefix><base>:<gauge>`.
 *
 * The base carries the Redis Cluster hash tag (`{api_key:abc}`), so every key of one descriptor lands in
 * one slot. A base without a non-empty `{...}` tag is wrapped in braces, so the rule holds for any base.
 */

/** Default key prefix of the Redis and Upstash stores. */
export const DEFAULT_PREFIX = "tollgate:";

/** `true` when `s` contains a non-empty Redis Cluster hash tag (`{` followed later by `}` with 1+ chars between). */
export function hasHashTag(s: string): boolean {
  const open = s.indexOf("{");
  if (open < 0) return false;
  const close = s.indexOf("}", open + 1);
  return close > open + 1;
}

/** Full key of a descriptor's base: `prefix + base`, wrapping the base in braces when it has no hash tag. */
export function baseKey(prefix: string, base: string): string {
  return hasHashTag(base) ? prefix + base : `${prefix}{${base}}`;
}

/** The key of a window's start time. */
export function windowKey(prefix: string, base: string): string {
  return `${baseKey(prefix, base)}:window`;
}

/**
 * The four keys of one counter: value, prev, holds, held. The scripts take them in this order, without `prev`
 * for a fixed window.
 */
export function counterKeys(prefix: string, base: string, name: string): [string, string, string, string] {
  const c = `${baseKey(prefix, base)}:${name}`;
  return [c, `${c}:prev`, `${c}:holds`, `${c}:held`];
}

/** The two hold keys of one counter (the last two of {@link counterKeys}): holds, held. */
export function holdKeys(prefix: string, base: string, name: string): [string, string] {
  const c = `${baseKey(prefix, base)}:${name}`;
  return [`${c}:holds`, `${c}:held`];
}

/** The key of a gauge (sorted set lease id -> expiry ms). */
export function gaugeKey(prefix: string, base: string, name: string): string {
  return `${baseKey(prefix, base)}:${name}`;
}
