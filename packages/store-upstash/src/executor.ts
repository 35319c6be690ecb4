/**
 * Runs the shared Lua scripts over Upstash's REST API: exactly one HTTP request per script call (EVALSHA),
 * plus one EVAL when the server answers NOSCRIPT. Platform-neutral: only `fetch` (inside the client),
 * `AbortController` and timers.
 */

import { StoreUnavailableError, TollgateError } from "@tollgate/core";
import { evalshaWithFallback, type ScriptExecutor } from "@tollgate/redis-scripts";
import type { Redis } from "@upstash/redis";

/** The part of `@upstash/redis`'s HTTP requester the store uses (the `Requester` interface of the client). */
export interface UpstashRequester {
  request(req: { body: unknown; signal?: AbortSignal }): Promise<{ result?: unknown; error?: string }>;
}

/**
 * The HTTP requester behind a `Redis` client. The store sends its commands through it rather than through
 * `redis.evalsha()` so that each script call is exactly one `POST /` (no auto-pipelining into `/pipeline`)
 * and replies arrive as the server sent them (no automatic JSON deserialization of strings), whatever options
 * the injected client was created with.
 */
export function requesterOf(client: Redis): UpstashRequester {
  const requester = (client as unknown as { client?: Partial<UpstashRequester> }).client;
  if (!requester || typeof requester.request !== "function") {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      "[upstash] `client` must be a Redis client from @upstash/redis (it has no HTTP requester)",
    );
  }
  return requester as UpstashRequester;
}

/** `@upstash/redis` appends `, command was: [...]` to server errors; for EVAL that is the whole script. */
const COMMAND_SUFFIX = ", command was: ";

/** Keeps the server's message only, so error classification never matches text inside the echoed script. */
function serverError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const at = err.message.indexOf(COMMAND_SUFFIX);
  return at < 0 ? err : new Error(err.message.slice(0, at), { cause: err });
}

/**
 * Builds the script executor of the Upstash store. `timeoutMs` aborts the HTTP request(s) of one call when
 * they have not answered in time, so a backend that stops answering does not leave requests piling up.
 */
export function upstashExecutor(requester: UpstashRequester, timeoutMs: number): ScriptExecutor {
  const noAnswer = () => new StoreUnavailableError("upstash", `no answer within ${timeoutMs} ms`);
  const send = async (command: string, first: string, keys: string[], args: string[], signal: AbortSignal) => {
    let reply: { result?: unknown; error?: string };
    try {
      reply = await requester.request({ body: [command, first, String(keys.length), ...keys, ...args], signal });
    } catch (err) {
      if (signal.aborted) throw noAnswer();
      throw serverError(err);
    }
    // On abort the client may resolve with a placeholder instead of throwing: never decode that.
    if (signal.aborted) throw noAnswer();
    if (reply.error !== undefined) throw new Error(reply.error);
    return reply.result;
  };

  return async (script, keys, args) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const run = evalshaWithFallback({
        evalsha: (sha1, k, a) => send("EVALSHA", sha1, k, a, controller.signal),
        eval: (source, k, a) => send("EVAL", source, k, a, controller.signal),
      });
      return await run(script, keys, args);
    } finally {
      clearTimeout(timer);
    }
  };
}
