import { isNoScriptError } from "./errors.js";
import type { LuaScript } from "./scripts.js";

/**
 * Runs one script against the backend and resolves with its raw reply. The store core calls it once per
 * round trip; EVALSHA with a NOSCRIPT fallback is the executor's job ({@link evalshaWithFallback}).
 */
export type ScriptExecutor = (script: LuaScript, keys: string[], args: string[]) => Promise<unknown>;

/** The primitive calls a backend offers. */
export interface EvalPrimitives {
  /** EVALSHA sha numkeys ...keys ...args */
  evalsha(sha1: string, keys: string[], args: string[]): Promise<unknown>;
  /** EVAL source numkeys ...keys ...args (also caches the script on the server). */
  eval(source: string, keys: string[], args: string[]): Promise<unknown>;
  /**
   * Optional: caches a script (`SCRIPT LOAD`) on every server that may run it. With it, calls that meet NOSCRIPT
   * together wait for one load and send EVALSHA again, instead of each sending the whole script with EVAL.
   */
  load?(source: string): Promise<unknown>;
}

/**
 * Builds a {@link ScriptExecutor} that sends EVALSHA and, when the server answers NOSCRIPT (first use,
 * restart, `SCRIPT FLUSH`, failover), loads the script once for every waiting call and sends EVALSHA again (with
 * `load`), or sends EVAL (without it, or when EVALSHA meets NOSCRIPT again).
 * @example
 * const exec = evalshaWithFallback({
 *   evalsha: (sha, keys, args) => redis.evalsha(sha, keys.length, ...keys, ...args),
 *   eval: (src, keys, args) => redis.eval(src, keys.length, ...keys, ...args),
 *   load: (src) => redis.script("LOAD", src),
 * });
 */
export function evalshaWithFallback(io: EvalPrimitives): ScriptExecutor {
  const loading = new Map<string, Promise<unknown>>();
  const loadOnce = (script: LuaScript): Promise<unknown> => {
    let p = loading.get(script.sha1);
    if (!p) {
      p = io.load!(script.source).finally(() => loading.delete(script.sha1));
      loading.set(script.sha1, p);
    }
    return p;
  };
  return async (script, keys, args) => {
    try {
      return await io.evalsha(script.sha1, keys, args);
    } catch (err) {
      if (!isNoScriptError(err)) throw err;
    }
    if (io.load) {
      try {
        await loadOnce(script);
        return await io.evalsha(script.sha1, keys, args);
      } catch (err) {
        if (!isNoScriptError(err)) throw err;
      }
    }
    return io.eval(script.source, keys, args);
  };
}
