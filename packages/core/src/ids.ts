/**
 * Lease ids: unique across every process that shares a store, cheap to make and to hash. Each generator draws a
 * random 122-bit prefix once (a UUID) and appends a counter, so ids never repeat within a process and two
 * processes collide only if their random prefixes do. A fresh UUID per request costs several times more.
 */
export function createIdGenerator(): () => string {
  const prefix = `${globalThis.crypto.randomUUID()}.`;
  let n = 0;
  return () => prefix + (n++).toString(36);
}
