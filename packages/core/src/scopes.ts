import { isNonNegativeInteger, isSafeInteger, TollgateError } from "./errors.js";
import type { Descriptor, TokenType } from "./types.js";
import { isName } from "./validate.js";

/** Default window length of a descriptor: one minute, like LiteLLM's `LITELLM_RATE_LIMIT_WINDOW_SIZE`. */
export const DEFAULT_WINDOW_MS = 60_000;

/** Everything of a descriptor except its scope and value: the limits and how they apply. */
export type ScopeLimits = Omit<Descriptor, "scope" | "value">;

/** The standard LLM scope kinds, with LiteLLM's descriptor keys. */
export type StandardScope =
  | "api_key"
  | "user"
  | "team"
  | "team_member"
  | "end_user"
  | "organization"
  | "model_per_key"
  | "model_per_team"
  | "model_per_organization"
  | "model_per_project"
  | "model_per_project_itpm"
  | "model_per_project_otpm"
  | "tag_per_key"
  | "mcp_per_key"
  | "mcp_per_team"
  | "agent"
  | "agent_session";

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** Throws INVALID_SCOPE unless `part` is a non-empty string without `{` or `}` (they would break Redis hash tags). */
function checkPart(part: unknown, what: string): asserts part is string {
  if (typeof part !== "string" || part.length === 0) {
    throw new TollgateError("INVALID_SCOPE", `${what} must be a non-empty string, got ${show(part)}`);
  }
  if (part.includes("{") || part.includes("}")) {
    throw new TollgateError(
      "INVALID_SCOPE",
      `${what} must not contain "{" or "}" (Redis hash tags), got ${show(part)}`,
    );
  }
}

/** Checks a limit; the message is only built on failure (this runs for every descriptor of every request). */
function checkLimit(n: unknown, limit: string, scope: string): void {
  if (n === undefined) return;
  if (!isNonNegativeInteger(n)) {
    throw new TollgateError(
      "INVALID_LIMIT",
      `${limit} limit of ${scope} must be a non-negative integer (omit it for no limit), got ${show(n)}`,
    );
  }
}

/**
 * Checks a descriptor, hand-written or built, before anything is counted. The engine calls it on every
 * descriptor it admits; the builders in {@link scopes} call it too.
 *
 * - `scope` must match `[A-Za-z0-9_]+` and `value` must be a non-empty string without `{`/`}` -> `INVALID_SCOPE`;
 * - `requests`, `tokens`, `maxParallel`, when present, must be non-negative safe integers -> `INVALID_LIMIT`
 *   (0 is a valid limit: it denies everything);
 * - `windowMs`, when present, must be a positive safe integer -> `INVALID_WINDOW`;
 * - `algorithm` must be `"fixed"` or `"sliding"`, `tokenType` `"total"`, `"input"` or `"output"`, `shadow` a boolean,
 *   `enforceWhen` a function -> `INVALID_ARGUMENT`.
 *
 * @throws {TollgateError} with the codes above.
 */
export function validateDescriptor(d: Descriptor): void {
  validateIdentity(d);
  validateLimits(d);
}

/**
 * The first half of {@link validateDescriptor}: `d` is an object with a valid scope and value. The engine runs
 * it only for scope/value pairs it has not interned yet (an interned pair was checked when it was interned).
 * @internal
 */
export function validateIdentity(d: Descriptor): void {
  if (typeof d !== "object" || d === null) {
    throw new TollgateError("INVALID_ARGUMENT", `a descriptor must be an object, got ${show(d)}`);
  }
  if (!isName(d.scope)) {
    throw new TollgateError("INVALID_SCOPE", `descriptor scope must match [A-Za-z0-9_]+, got ${show(d.scope)}`);
  }
  checkPart(d.value, `value of scope ${d.scope}`);
}

/** The second half of {@link validateDescriptor}: limits, window and options. @internal */
export function validateLimits(d: Descriptor): void {
  checkLimit(d.requests, "requests", d.scope);
  checkLimit(d.tokens, "tokens", d.scope);
  checkLimit(d.maxParallel, "maxParallel", d.scope);
  if (d.windowMs !== undefined && (!isSafeInteger(d.windowMs) || d.windowMs <= 0)) {
    throw new TollgateError(
      "INVALID_WINDOW",
      `windowMs of ${d.scope} must be a positive integer (ms), got ${show(d.windowMs)}`,
    );
  }
  if (d.algorithm !== undefined && d.algorithm !== "fixed" && d.algorithm !== "sliding") {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `algorithm of ${d.scope} must be "fixed" or "sliding", got ${show(d.algorithm)}`,
    );
  }
  if (d.shadow !== undefined && typeof d.shadow !== "boolean") {
    throw new TollgateError("INVALID_ARGUMENT", `shadow of ${d.scope} must be a boolean, got ${show(d.shadow)}`);
  }
  if (d.enforceWhen !== undefined && typeof d.enforceWhen !== "function") {
    throw new TollgateError("INVALID_ARGUMENT", `enforceWhen of ${d.scope} must be a function`);
  }
  const t = d.tokenType;
  if (t !== undefined && t !== "total" && t !== "input" && t !== "output") {
    throw new TollgateError(
      "INVALID_ARGUMENT",
      `tokenType of ${d.scope} must be "total", "input" or "output", got ${show(t)}`,
    );
  }
}

/**
 * The base key of a descriptor, `{scope:value}` (e.g. `{team_member:t1:u2}`), the same as LiteLLM's Redis hash tag,
 * so every counter of one descriptor lands in one Redis Cluster slot. Does not validate: call
 * {@link validateDescriptor} first.
 */
export function descriptorKey(d: Pick<Descriptor, "scope" | "value">): string {
  return "{" + d.scope + ":" + d.value + "}";
}

/**
 * A builder's descriptor: every field present, always in this order, so that every descriptor a builder makes has
 * one hidden class (property reads in the engine stay monomorphic). No object spread: on Node 20 an object literal
 * that spreads and then adds properties (`{ ...limits, scope, value }`) takes V8's slow path, about 1 µs per object,
 * which made builders 2-7× slower than literals through the whole admission.
 */
function build(scope: StandardScope, value: string, limits: ScopeLimits | undefined, tokenType: TokenType): Descriptor {
  if (limits !== undefined && (typeof limits !== "object" || limits === null)) {
    throw new TollgateError("INVALID_ARGUMENT", `limits of ${scope} must be an object, got ${show(limits)}`);
  }
  const d: Descriptor = {
    scope,
    value,
    requests: limits?.requests,
    tokens: limits?.tokens,
    maxParallel: limits?.maxParallel,
    windowMs: limits?.windowMs ?? DEFAULT_WINDOW_MS,
    algorithm: limits?.algorithm,
    tokenType: limits?.tokenType ?? (tokenType === "total" ? undefined : tokenType), // undefined: "total"
    shadow: limits?.shadow,
    enforceWhen: limits?.enforceWhen,
  };
  validateLimits(d); // the scope is a constant and the id parts were checked: only the limits are left
  return d;
}

function single(scope: StandardScope, what: string, tokenType: TokenType = "total") {
  const label = `${scope} ${what}`;
  return (id: string, limits?: ScopeLimits): Descriptor => {
    checkPart(id, label);
    return build(scope, id, limits, tokenType);
  };
}

function pair(scope: StandardScope, first: string, second: string, tokenType: TokenType = "total") {
  const labels = [`${scope} ${first}`, `${scope} ${second}`] as const;
  return (a: string, b: string, limits?: ScopeLimits): Descriptor => {
    checkPart(a, labels[0]);
    checkPart(b, labels[1]);
    return build(scope, a + ":" + b, limits, tokenType);
  };
}

/**
 * Builders for the standard LLM scopes, with LiteLLM's descriptor keys and value formats (so keys and 429 texts
 * match a LiteLLM deployment). Each returns a validated {@link Descriptor} whose `windowMs` defaults to
 * {@link DEFAULT_WINDOW_MS}; `limits` is optional (a descriptor without limits is only used for accounting).
 * Every id must be a non-empty string without `{`/`}` (`INVALID_SCOPE`); ids may contain `:` (model names do).
 *
 * @example scopes.teamMember("team_1", "user_2", { requests: 10, tokens: 5_000 }) // value "team_1:user_2"
 */
export const scopes = Object.freeze({
  /** `api_key` / the hashed virtual key. */
  apiKey: single("api_key", "hashed key"),
  /** `user` / user id. */
  user: single("user", "user id"),
  /** `team` / team id. */
  team: single("team", "team id"),
  /** `team_member` / `team:user`. */
  teamMember: pair("team_member", "team id", "user id"),
  /** `end_user` / end-user (customer) id. */
  endUser: single("end_user", "end-user id"),
  /** `organization` / organization id. */
  organization: single("organization", "organization id"),
  /** `model_per_key` / `hashedKey:model`. */
  modelPerKey: pair("model_per_key", "hashed key", "model"),
  /** `model_per_team` / `team:model`. */
  modelPerTeam: pair("model_per_team", "team id", "model"),
  /** `model_per_organization` / `organization:model`. */
  modelPerOrganization: pair("model_per_organization", "organization id", "model"),
  /** `model_per_project` / `project:model`. */
  modelPerProject: pair("model_per_project", "project id", "model"),
  /**
   * `model_per_project_itpm` / `project:model`: LiteLLM's per-project input-tokens-per-minute limit
   * (`project_metadata.model_itpm_limit`); put the limit in `tokens`. Its `tokenType` defaults to `"input"`.
   */
  modelPerProjectItpm: pair("model_per_project_itpm", "project id", "model", "input"),
  /**
   * `model_per_project_otpm` / `project:model`: LiteLLM's per-project output-tokens-per-minute limit
   * (`project_metadata.model_otpm_limit`); put the limit in `tokens`. Its `tokenType` defaults to `"output"`.
   */
  modelPerProjectOtpm: pair("model_per_project_otpm", "project id", "model", "output"),
  /** `tag_per_key` / `hashedKey:tag`: a key's limit per request tag (LiteLLM's `metadata.tag_rpm_limit`). */
  tagPerKey: pair("tag_per_key", "hashed key", "tag"),
  /** `mcp_per_key` / `hashedKey:server`: a key's limit per MCP server (LiteLLM's `metadata.mcp_rpm_limit`). */
  mcpPerKey: pair("mcp_per_key", "hashed key", "MCP server"),
  /** `mcp_per_team` / `team:server`: a team's limit per MCP server (team `metadata.mcp_rpm_limit`). */
  mcpPerTeam: pair("mcp_per_team", "team id", "MCP server"),
  /** `agent` / agent id. */
  agent: single("agent", "agent id"),
  /** `agent_session` / `agent:session`. */
  agentSession: pair("agent_session", "agent id", "session id"),
});
