/**
 * Lease ids: unique across every process that shares a store, cheap to make and to hash. Each generator draws a
 * 64-bit random prefix once and appends a counter, so ids never repeat within a process, and two of k processes
 * share a prefix with probability about k²/2⁶⁵. Short ids matter: stores hash them on every admission and release,
 * and a fresh 36-character UUID per request costs several times more.
 */
export function createIdGenerator(): () => string {
  const [a, b] = globalThis.crypto.getRandomValues(new Uint32Array(2));
  const prefix = `${a!.toString(36)}${b!.toString(36)}.`;
  let n = 0;
  return () => prefix + (n++).toString(36);
}
