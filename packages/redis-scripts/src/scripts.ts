import { ADJUST_LUA } from "./lua/adjust.js";
import { ADMIT_LUA } from "./lua/admit.js";
import { READ_LUA } from "./lua/read.js";
import { RENEW_LUA } from "./lua/renew.js";

/** One Lua script with its SHA1 (for EVALSHA). */
export interface LuaScript {
  /** Short name used in errors: `"admit"`, `"adjust"`, `"renew"`, `"read"`. */
  readonly name: ScriptName;
  /** Full Lua source (what EVAL sends). */
  readonly source: string;
  /** Lowercase hex SHA1 of `source` (what EVALSHA sends). */
  readonly sha1: string;
}

export type ScriptName = "admit" | "adjust" | "renew" | "read";

/**
 * SHA1 of each script, hard-coded so the package needs no crypto API at load (it runs on edge runtimes).
 * `test/scripts.test.ts` recomputes them; after changing a script run
 * `npx tsx packages/redis-scripts/scripts/print-shas.ts --write`.
 */
// BEGIN SHAS
const SHAS = {
  admit: "ec22ca4ccdcdd46fca9d9711febeed1f4194237a",
  adjust: "372324ffc6322c9ae7ecb8db4c8a23b413d222b7",
  renew: "9f12171692e279baad6ab95525ff5d5605ef31fd",
  read: "b26694d461d9e1df3e391571cdfd2f2f5b1bfa8d",
} as const;
// END SHAS

/** The admission script. See `src/lua/admit.ts` for KEYS/ARGV. */
export const ADMIT_SCRIPT: LuaScript = { name: "admit", source: ADMIT_LUA, sha1: SHAS.admit };
/** The adjustment (settle, refund, release) script. See `src/lua/adjust.ts`. */
export const ADJUST_SCRIPT: LuaScript = { name: "adjust", source: ADJUST_LUA, sha1: SHAS.adjust };
/** The lease renewal script. See `src/lua/renew.ts`. */
export const RENEW_SCRIPT: LuaScript = { name: "renew", source: RENEW_LUA, sha1: SHAS.renew };
/** The read-only status script. See `src/lua/read.ts`. */
export const READ_SCRIPT: LuaScript = { name: "read", source: READ_LUA, sha1: SHAS.read };

/** Every script, e.g. to `SCRIPT LOAD` them ahead of traffic. */
export const SCRIPTS: readonly LuaScript[] = [ADMIT_SCRIPT, ADJUST_SCRIPT, RENEW_SCRIPT, READ_SCRIPT];
