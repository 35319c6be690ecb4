import { isNoScriptError } from "./errors.js";
import type { LuaScript } from "./scripts.js";

/**
 * Runs one script against the backend and resolves with its raw reply. The store core calls it once per
 * round trip; EVALSHA with a NOSCRIPT fallback is the executor's job ({@link evalshaWithFallback}).
 */
export type ScriptExecutor = (script: LuaScript, keys: string[], args: string[]) => Promise<unknown>;

/** The two primitive calls a backend offers. */
export interface EvalPrimitives {
  /** EVALSHA sha numkeys ...keys ...args */
  evalsha(sha1: string, keys: string[], args: string[]): Promise<unknown>;
  /** EVAL source numkeys ...keys ...args (also caches the script on the server). */
  eval(source: string, keys: string[], args: string[]): Promise<unknown>;
}

/**
 * Builds a {@link ScriptExecutor} that sends EVALSHA and, when the server answers NOSCRIPT (first use,
 * restart, `SCRIPT FLUSH`, failover), sends EVAL once, which caches the script again.
 * @example
 * const exec = evalshaWithFallback({
 *   evalsha: (sha, keys, args) => redis.evalsha(sha, keys.length, ...keys, ...args),
 *   eval: (src, keys, args) => redis.eval(src, keys.length, ...keys, ...args),
 * });
 */
export function evalshaWithFallback(io: EvalPrimitives): ScriptExecutor {
  return async (script, keys, args) => {
    try {
      return await io.evalsha(script.sha1, keys, args);
    } catch (err) {
      if (!isNoScriptError(err)) throw err;
      return io.eval(script.source, keys, args);
    }
  };
}
