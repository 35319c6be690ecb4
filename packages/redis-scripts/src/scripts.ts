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
  admit: "7946223a8a47f5ba6be1c5451b230e5b206eb30b",
  adjust: "327dd533fe0f70179b5b040875284dc0f94f7ce1",
  renew: "6efd75fe58856e8cd0ce90292deb2bfc71a1a1b6",
  read: "82910afd0369dccfd03443c7372cec9dbb265e52",
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
