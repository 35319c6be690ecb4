/**
 * LiteLLM v3's own Lua (parallel_request_limiter_v3.py), loaded at run time from the seed copy of its source for a
 * same-run comparison. This is not Tollgate code: the benchmark only sends LiteLLM's scripts to Redis, with the
 * KEYS/ARGV LiteLLM builds for them.
 *
 * The file is looked up as `shared/seeds/000_00b783dfd7166662.txt` in the first ancestor directory of this file that
 * has it (`../shared` from the project's root).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SEED = "000_00b783dfd7166662.txt";

function seedPath(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "shared", "seeds", SEED);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}

export interface LiteLLMScripts {
  /** `CHECK_AND_INCREMENT_BY_N_SCRIPT`: KEYS (window, counter) pairs; ARGV limit, increment, ttl s, window s. */
  checkAndIncrement: string;
  /** `TOKEN_INCREMENT_SCRIPT`: KEYS counters; ARGV (increment, ttl s) pairs; INCRBYFLOAT keeping the TTL. */
  tokenIncrement: string;
  /** Where they were read from. */
  source: string;
}

function extract(text: string, name: string): string {
  const start = text.indexOf(`${name} = """`);
  if (start < 0) throw new Error(`${name} not found in the LiteLLM seed`);
  const body = start + name.length + 6;
  const end = text.indexOf('"""', body);
  return text.slice(body, end);
}

/** LiteLLM's two scripts, or undefined when the seed file is not on this machine. */
export function loadLiteLLMScripts(): LiteLLMScripts | undefined {
  const path = seedPath();
  if (!path) return undefined;
  const text = readFileSync(path, "utf8");
  return {
    checkAndIncrement: extract(text, "CHECK_AND_INCREMENT_BY_N_SCRIPT"),
    tokenIncrement: extract(text, "TOKEN_INCREMENT_SCRIPT"),
    source: path,
  };
}
