import { createHash, randomBytes } from "node:crypto";

/** A new virtual key: `sk-` + 16 random bytes, url-safe base64 (22 characters), like LiteLLM's. */
export function generateSecret(): string {
  return `sk-${randomBytes(16).toString("base64url")}`;
}

/** sha256 hex of the secret: what the database keeps (the same hash LiteLLM stores in `token`). */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** LiteLLM's abbreviated key name: `sk-...` + the last 4 characters. */
export function keyNameOf(secret: string): string {
  return `sk-...${secret.slice(-4)}`;
}

const HASH = /^[0-9a-f]{64}$/;

/** Whether `s` looks like a stored hash rather than a secret (management calls accept either). */
export function isHash(s: string): boolean {
  return HASH.test(s);
}

/** The stored hash for a value given as a secret (`sk-…`) or already as its hash; undefined when it is neither. */
export function tokenOf(keyOrHash: string): string | undefined {
  if (keyOrHash.startsWith("sk-")) return hashSecret(keyOrHash);
  if (isHash(keyOrHash)) return keyOrHash;
  return undefined;
}
