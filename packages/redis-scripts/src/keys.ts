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
 * Appends a counter's keys in the order the scripts take them: value, prev (`sliding` only), then holds and held
 * (`holds` only; left out where a script reads no holds: `adjust` without read-back). Builds only those strings.
 */
export function pushCounterKeys(
  keys: string[],
  prefix: string,
  base: string,
  name: string,
  sliding: boolean,
  holds: boolean,
): void {
  const c = `${baseKey(prefix, base)}:${name}`;
  keys.push(c);
  if (sliding) keys.push(`${c}:prev`);
  if (holds) keys.push(`${c}:holds`, `${c}:held`);
}

/** Appends a counter's two hold keys: holds (sorted set lease id -> expiry), held (hash lease id -> amount). */
export function pushHoldKeys(keys: string[], prefix: string, base: string, name: string): void {
  const c = `${baseKey(prefix, base)}:${name}`;
  keys.push(`${c}:holds`, `${c}:held`);
}

/** The four keys of one counter: value, prev, holds, held (see {@link pushCounterKeys}). */
export function counterKeys(prefix: string, base: string, name: string): [string, string, string, string] {
  const keys: string[] = [];
  pushCounterKeys(keys, prefix, base, name, true, true);
  return keys as [string, string, string, string];
}

/** The two hold keys of one counter (the last two of {@link counterKeys}): holds, held. */
export function holdKeys(prefix: string, base: string, name: string): [string, string] {
  const keys: string[] = [];
  pushCounterKeys(keys, prefix, base, name, false, true);
  return [keys[1]!, keys[2]!];
}

/** The key of a gauge (sorted set lease id -> expiry ms). */
export function gaugeKey(prefix: string, base: string, name: string): string {
  return `${baseKey(prefix, base)}:${name}`;
}

/** Number of Redis Cluster hash slots. */
const SLOTS = 16384;

const slotTagTables = new WeakMap<(key: string) => number, string[]>();

/**
 * A short hash tag whose key hashes to `slot` under `slotOf`, the same for every process (the first base-36 number,
 * counting from 0, that lands in the slot). The table of all 16,384 is built once per `slotOf` function, on first
 * use (about 170,000 hashes of short strings).
 */
export function slotTag(slotOf: (key: string) => number, slot: number): string {
  let table = slotTagTables.get(slotOf);
  if (!table) {
    table = new Array<string>(SLOTS);
    let left = SLOTS;
    for (let i = 0; left > 0; i++) {
      const tag = i.toString(36);
      const s = slotOf(tag);
      if (table[s] === undefined) {
        table[s] = tag;
        left--;
      }
    }
    slotTagTables.set(slotOf, table);
  }
  const tag = table[slot];
  if (tag === undefined) throw new RangeError(`no hash slot ${slot}`);
  return tag;
}

/**
 * The key of a ticket (contract 2). On one Redis (no `tag`): `<prefix>ticket:<id>`. On a Cluster, one ticket per slot
 * group of a batch: `<prefix>{<tag>}:ticket:<id>` with `tag` = {@link slotTag} of the group's slot, so an admission,
 * its settle and its compensation find the same ticket whatever windows each of them names.
 */
export function ticketKey(prefix: string, id: string, tag?: string): string {
  return tag === undefined ? `${prefix}ticket:${id}` : `${prefix}{${tag}}:ticket:${id}`;
}
