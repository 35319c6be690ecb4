import { litellmBudgets, parseDuration } from "@tollgate/budgets";
import type { Budget, JsonObject, Key, User } from "../db/repository.js";
import {
  canReadAll,
  type HandlerInput,
  type HandlerResult,
  iso,
  isTeamAdmin,
  type ManagementContext,
  mergeMetadata,
  ok,
  requireAdmin,
  resetSpec,
  shownSpend,
} from "./context.js";
import { badRequest, forbidden, notFound } from "./errors.js";
import { type Caller, keyBudgetFields } from "./identity.js";
import { generateSecret, hashSecret, keyNameOf, tokenOf } from "./secrets.js";
import { type Fields, queryInt } from "./validate.js";

/** Key fields LiteLLM keeps inside `metadata`. */
const METADATA_FIELDS = [
  "model_rpm_limit",
  "model_tpm_limit",
  "tags",
  "rpm_limit_type",
  "tpm_limit_type",
  "guardrails",
];

/** `now + duration` for a key's `duration` (`30d`, `1mo`, …); null = never expires. */
export function expiryOf(duration: string | null, now: number): number | null {
  const d = parseDuration(duration);
  if (d === null) return null;
  if (d.unit === "mo") {
    const t = new Date(now);
    const day = t.getUTCDate();
    t.setUTCDate(1);
    t.setUTCMonth(t.getUTCMonth() + d.count);
    const last = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 0)).getUTCDate();
    t.setUTCDate(Math.min(day, last));
    return t.getTime();
  }
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[d.unit];
  return now + d.count * unit;
}

/** The key view LiteLLM returns from `/key/info` (`info`) and `/key/list` (full objects): the row without secrets. */
export async function keyView(ctx: ManagementContext, k: Key, budget?: Budget | null): Promise<JsonObject> {
  const kb =
    budget === undefined ? (k.budget_id === null ? null : ((await ctx.repo.getBudget(k.budget_id)) ?? null)) : budget;
  const spec = litellmBudgets({ key: keyBudgetFields(k, kb) }).find((b) => b.model === undefined) ?? null;
  const { spend, budget_reset_at } = await shownSpend(
    ctx,
    spec,
    k.spend_nano,
    resetSpec("key", k.key_id, k.budget_duration ?? kb?.budget_duration ?? null, k.budget_started_at),
  );
  return {
    key_name: k.key_name,
    key_alias: k.key_alias,
    spend,
    expires: iso(k.expires),
    models: k.models,
    aliases: k.aliases,
    config: k.config,
    user_id: k.user_id,
    team_id: k.team_id,
    organization_id: k.organization_id,
    permissions: k.permissions,
    max_parallel_requests: k.max_parallel_requests,
    metadata: k.metadata,
    blocked: k.blocked,
    tpm_limit: k.tpm_limit,
    rpm_limit: k.rpm_limit,
    max_budget: k.max_budget,
    soft_budget: k.soft_budget,
    budget_duration: k.budget_duration,
    budget_reset_at,
    allowed_cache_controls: k.allowed_cache_controls,
    model_spend: {},
    model_max_budget: k.model_max_budget,
    budget_id: k.budget_id,
    litellm_budget_table: kb,
    key_id: k.key_id,
    created_at: iso(k.created_at),
    created_by: k.created_by,
    updated_at: iso(k.updated_at),
    updated_by: k.updated_by,
  };
}

/** Finds a key given as a secret or a hash; 400 for neither, 404 when unknown. */
async function findKey(ctx: ManagementContext, given: unknown, param = "key"): Promise<Key> {
  if (typeof given !== "string" || given === "") throw badRequest(`${param} is required`, param);
  const token = tokenOf(given);
  if (token === undefined) throw badRequest("Invalid key format.", param);
  const k = await ctx.repo.getKey(token);
  if (k === undefined)
    throw notFound(`Key not found in database. Key=${given.startsWith("sk-") ? keyNameOf(given) : given}`, param);
  return k;
}

/** Whether the caller may change this key: proxy admins, its owner, admins of its team. */
async function canManageKey(ctx: ManagementContext, caller: Caller, k: Key): Promise<boolean> {
  if (caller.role === "proxy_admin") return true;
  if (caller.role === "proxy_admin_viewer" || caller.role === "internal_user_viewer") return false;
  if (caller.user_id !== null && k.user_id === caller.user_id) return true;
  return isTeamAdmin(ctx, caller, k.team_id);
}

async function canSeeKey(ctx: ManagementContext, caller: Caller, k: Key): Promise<boolean> {
  if (canReadAll(caller)) return true;
  if (caller.token === k.token) return true;
  if (caller.user_id !== null && k.user_id === caller.user_id) return true;
  return isTeamAdmin(ctx, caller, k.team_id);
}

/** Reads the key fields shared by generate, update and regenerate. Absent fields stay undefined. */
function readKeyFields(f: Fields) {
  return {
    key_alias: f.str("key_alias"),
    duration: f.duration("duration"),
    models: f.strList("models"),
    max_budget: f.usd("max_budget"),
    soft_budget: f.usd("soft_budget"),
    user_id: f.id("user_id"),
    team_id: f.id("team_id"),
    organization_id: f.id("organization_id"),
    budget_id: f.id("budget_id"),
    max_parallel_requests: f.int("max_parallel_requests"),
    metadata: f.obj("metadata"),
    tpm_limit: f.int("tpm_limit"),
    rpm_limit: f.int("rpm_limit"),
    budget_duration: f.duration("budget_duration"),
    allowed_cache_controls: f.strList("allowed_cache_controls"),
    config: f.obj("config"),
    permissions: f.obj("permissions"),
    aliases: f.obj("aliases"),
    model_max_budget: f.modelBudgets("model_max_budget"),
    model_rpm_limit: f.intMap("model_rpm_limit"),
    model_tpm_limit: f.intMap("model_tpm_limit"),
    tags: f.strList("tags"),
    blocked: f.bool("blocked"),
    spend: f.usd("spend"),
  };
}

async function checkReferences(ctx: ManagementContext, v: ReturnType<typeof readKeyFields>): Promise<void> {
  if (v.budget_id != null && (await ctx.repo.getBudget(v.budget_id)) === undefined) {
    throw badRequest(`Budget not found: budget_id=${v.budget_id}. Create it with /budget/new first.`, "budget_id");
  }
  if (v.organization_id != null && (await ctx.repo.getOrganization(v.organization_id)) === undefined) {
    throw badRequest(`Organization not found for organization_id=${v.organization_id}`, "organization_id");
  }
}

async function aliasTaken(ctx: ManagementContext, alias: string, except?: string): Promise<void> {
  const found = await ctx.repo.getKeysByAlias([alias]);
  if (found.some((k) => k.token !== except)) {
    throw badRequest(
      `Key with alias '${alias}' already exists. Unique key aliases across all keys are required.`,
      "key_alias",
    );
  }
}

/** Creates the user row of a key's `user_id` when it does not exist yet (LiteLLM tracks spend per user). */
export async function ensureUser(ctx: ManagementContext, userId: string, now: number): Promise<void> {
  if ((await ctx.repo.getUser(userId)) !== undefined) return;
  const u: User = {
    user_id: userId,
    user_alias: null,
    user_email: null,
    user_role: "internal_user",
    organization_id: null,
    max_budget: null,
    spend_nano: 0,
    models: [],
    metadata: {},
    max_parallel_requests: null,
    tpm_limit: null,
    rpm_limit: null,
    budget_duration: null,
    budget_started_at: null,
    model_max_budget: {},
    created_at: now,
    updated_at: now,
  };
  try {
    await ctx.repo.insertUser(u);
  } catch (err) {
    // Created concurrently by another call: fine.
    if ((await ctx.repo.getUser(userId)) === undefined) throw err;
  }
}

/** The permission rules of `/key/generate` for callers other than the proxy admin. */
async function checkGenerate(ctx: ManagementContext, caller: Caller, userId: string | null, teamId: string | null) {
  if (caller.role === "proxy_admin") return;
  if (teamId !== null) {
    const member = caller.user_id === null ? undefined : await ctx.repo.getTeamMember(teamId, caller.user_id);
    if (member === undefined) {
      throw forbidden(`User=${caller.user_id} not assigned to team=${teamId}`);
    }
    if (userId !== caller.user_id) {
      if (member.role !== "admin") {
        throw forbidden(`User can only create keys for themselves. Got user_id=${userId}, Your ID=${caller.user_id}`);
      }
      if (userId !== null && (await ctx.repo.getTeamMember(teamId, userId)) === undefined) {
        throw badRequest(`User=${userId} not assigned to team=${teamId}`, "user_id");
      }
    }
    return;
  }
  if (userId !== caller.user_id) {
    throw forbidden(`User can only create keys for themselves. Got user_id=${userId}, Your ID=${caller.user_id}`);
  }
}

/** Builds a new key row (not yet inserted) and its secret. */
export function newKeyRow(
  v: ReturnType<typeof readKeyFields>,
  extra: { secret: string; userId: string | null; teamId: string | null; createdBy: string | null; now: number },
): Key {
  const { secret, now } = extra;
  const token = hashSecret(secret);
  let metadata: JsonObject = { ...(v.metadata ?? {}) };
  if (v.model_rpm_limit != null) metadata.model_rpm_limit = v.model_rpm_limit;
  if (v.model_tpm_limit != null) metadata.model_tpm_limit = v.model_tpm_limit;
  if (v.tags != null) metadata.tags = v.tags;
  metadata = Object.fromEntries(Object.entries(metadata).filter(([, x]) => x !== undefined));
  return {
    token,
    key_id: token,
    key_name: keyNameOf(secret),
    key_alias: v.key_alias ?? null,
    spend_nano: 0,
    expires: expiryOf(v.duration ?? null, now),
    models: v.models ?? [],
    aliases: v.aliases ?? {},
    config: v.config ?? {},
    permissions: v.permissions ?? {},
    metadata,
    allowed_cache_controls: v.allowed_cache_controls ?? [],
    model_max_budget: v.model_max_budget ?? {},
    user_id: extra.userId,
    team_id: extra.teamId,
    organization_id: v.organization_id ?? null,
    budget_id: v.budget_id ?? null,
    blocked: v.blocked ?? false,
    max_parallel_requests: v.max_parallel_requests ?? null,
    tpm_limit: v.tpm_limit ?? null,
    rpm_limit: v.rpm_limit ?? null,
    max_budget: v.max_budget ?? null,
    soft_budget: v.soft_budget ?? null,
    budget_duration: v.budget_duration ?? null,
    budget_started_at: v.budget_duration == null ? null : now,
    created_at: now,
    created_by: extra.createdBy,
    updated_at: now,
    updated_by: extra.createdBy,
  };
}

/** LiteLLM's `GenerateKeyResponse`: the request's fields, the secret (only here), its hash and the row's fields. */
export async function generateResponse(
  ctx: ManagementContext,
  k: Key,
  secret: string,
  duration: string | null,
): Promise<JsonObject> {
  return {
    ...(await keyView(ctx, k)),
    key: secret,
    token: k.token,
    token_id: k.token,
    duration,
  };
}

/** Creates a key (also used by `/user/new`). Returns the row and its secret. */
export async function createKey(
  ctx: ManagementContext,
  caller: Caller,
  v: ReturnType<typeof readKeyFields>,
  custom: string | null,
  now: number,
): Promise<{ row: Key; secret: string }> {
  if (v.spend != null && v.spend !== 0) {
    throw badRequest("spend cannot be set: it is counted from the requests the key makes", "spend");
  }
  const userId = v.user_id ?? (caller.role === "proxy_admin" ? null : caller.user_id);
  const teamId = v.team_id ?? null;
  await checkGenerate(ctx, caller, userId, teamId);
  await checkReferences(ctx, v);
  if (v.key_alias != null) await aliasTaken(ctx, v.key_alias);
  if (custom !== null && !custom.startsWith("sk-")) {
    const masked = custom.length > 8 ? `${custom.slice(0, 4)}****${custom.slice(-4)}` : "****";
    throw badRequest(`Invalid key format. LiteLLM Virtual Key must start with 'sk-'. Received: ${masked}`, "key");
  }
  const secret = custom ?? generateSecret();
  const row = newKeyRow(v, { secret, userId, teamId, createdBy: caller.user_id, now });
  if (userId !== null) await ensureUser(ctx, userId, now);
  try {
    await ctx.repo.insertKey(row);
  } catch (err) {
    if (v.key_alias != null) await aliasTaken(ctx, v.key_alias);
    if ((await ctx.repo.getKey(row.token)) !== undefined) throw badRequest("This key already exists.", "key");
    throw err;
  }
  // A negative cache entry for this secret (a request made before it existed) must go, here and elsewhere.
  ctx.cache.invalidate("key", row.token);
  return { row, secret };
}

export async function generateKey({ caller, fields, ctx }: HandlerInput): Promise<HandlerResult> {
  const v = readKeyFields(fields);
  const custom = fields.str("key") ?? null;
  const { row, secret } = await createKey(ctx, caller, v, custom, ctx.now());
  return ok(await generateResponse(ctx, row, secret, v.duration ?? null));
}

/** The column changes of `/key/update` (absent fields untouched; `null` clears). */
function keyPatch(v: ReturnType<typeof readKeyFields>, f: Fields, existing: Key, now: number): Partial<Key> {
  const p: Partial<Key> = {};
  const set = <K extends keyof Key>(name: K, value: Key[K] | undefined) => {
    if (value !== undefined) p[name] = value;
  };
  set("key_alias", v.key_alias);
  if (v.duration !== undefined) p.expires = expiryOf(v.duration, now);
  set("models", v.models === null ? [] : (v.models ?? undefined));
  set("max_budget", v.max_budget);
  set("soft_budget", v.soft_budget);
  set("user_id", v.user_id);
  set("team_id", v.team_id);
  set("organization_id", v.organization_id);
  set("budget_id", v.budget_id);
  set("max_parallel_requests", v.max_parallel_requests);
  set("tpm_limit", v.tpm_limit);
  set("rpm_limit", v.rpm_limit);
  if (v.budget_duration !== undefined) {
    p.budget_duration = v.budget_duration;
    // A new duration starts a fresh period (LiteLLM #34492: carried spend must not deny at once).
    if (v.budget_duration !== existing.budget_duration) p.budget_started_at = v.budget_duration === null ? null : now;
  }
  set("allowed_cache_controls", v.allowed_cache_controls === null ? [] : (v.allowed_cache_controls ?? undefined));
  set("config", v.config === null ? {} : (v.config ?? undefined));
  set("permissions", v.permissions === null ? {} : (v.permissions ?? undefined));
  set("aliases", v.aliases === null ? {} : (v.aliases ?? undefined));
  set("model_max_budget", v.model_max_budget === null ? {} : (v.model_max_budget ?? undefined));
  if (v.blocked !== undefined && v.blocked !== null) p.blocked = v.blocked;
  if (v.metadata !== undefined || METADATA_FIELDS.some((n) => f.has(n))) {
    const base = v.metadata === undefined ? existing.metadata : (v.metadata ?? {});
    p.metadata = mergeMetadata(base, f, METADATA_FIELDS);
  }
  return p;
}

export async function updateKey({ caller, fields, ctx }: HandlerInput): Promise<HandlerResult> {
  const existing = await findKey(ctx, fields.body.key);
  if (!(await canManageKey(ctx, caller, existing))) {
    throw forbidden(`You can only update your own keys or your team's keys (as team admin). Key=${existing.key_name}`);
  }
  const v = readKeyFields(fields);
  if (v.spend != null && v.spend !== 0)
    throw badRequest("spend cannot be set: it is counted from the requests the key makes", "spend");
  if (caller.role !== "proxy_admin") {
    // Non-admins may not move a key to another owner or to a team they do not administer.
    if (v.user_id !== undefined && v.user_id !== existing.user_id) {
      throw forbidden(`User can only create keys for themselves. Got user_id=${v.user_id}, Your ID=${caller.user_id}`);
    }
    if (v.team_id !== undefined && v.team_id !== existing.team_id && !(await isTeamAdmin(ctx, caller, v.team_id))) {
      throw forbidden(`User=${caller.user_id} is not an admin of team=${v.team_id}`);
    }
  }
  await checkReferences(ctx, v);
  if (v.key_alias != null && v.key_alias !== existing.key_alias) await aliasTaken(ctx, v.key_alias, existing.token);
  const now = ctx.now();
  const patch = keyPatch(v, fields, existing, now);
  patch.updated_at = now;
  patch.updated_by = caller.user_id;
  if (v.user_id != null) await ensureUser(ctx, v.user_id, now);
  await ctx.repo.updateKey(existing.token, patch);
  ctx.cache.invalidate("key", existing.token);
  const row = (await ctx.repo.getKey(existing.token))!;
  return ok({ key: fields.body.key, ...(await keyView(ctx, row)) });
}

export async function keyInfo({ caller, query, ctx }: HandlerInput): Promise<HandlerResult> {
  const given = query.get("key");
  let k: Key;
  if (given === null || given === "") {
    if (caller.key === null) throw badRequest("key is required (the master key has no key info)", "key");
    k = (await ctx.repo.getKey(caller.key.token)) ?? caller.key;
  } else {
    k = await findKey(ctx, given);
  }
  if (!(await canSeeKey(ctx, caller, k))) {
    throw forbidden(
      "You are not allowed to view this key's info. Only the key's owner, its team admins and proxy admins can.",
    );
  }
  return ok({ key: given ?? k.token, info: await keyView(ctx, k) });
}

export async function deleteKeys({ caller, fields, ctx }: HandlerInput): Promise<HandlerResult> {
  const keys = fields.strList("keys") ?? [];
  const aliases = fields.strList("key_aliases") ?? [];
  if (keys.length === 0 && aliases.length === 0) throw badRequest("Give keys or key_aliases to delete", "keys");
  const tokens: string[] = [];
  for (const k of keys) {
    const t = tokenOf(k);
    if (t === undefined) throw badRequest("Invalid key format.", "keys");
    tokens.push(t);
  }
  const found = [...(await ctx.repo.getKeys(tokens)), ...(await ctx.repo.getKeysByAlias(aliases))];
  if (found.length === 0) throw notFound("No keys found", "keys");
  for (const k of found) {
    if (!(await canManageKey(ctx, caller, k))) {
      throw forbidden(
        `You are not allowed to delete key ${k.key_name}: only its owner, its team admins and proxy admins can. Nothing was deleted.`,
      );
    }
  }
  await ctx.repo.deleteKeys(found.map((k) => k.token));
  for (const k of found) ctx.cache.invalidate("key", k.token);
  return ok({ deleted_keys: [...keys, ...aliases] });
}

async function setBlocked(input: HandlerInput, blocked: boolean): Promise<HandlerResult> {
  const { caller, fields, ctx } = input;
  const k = await findKey(ctx, fields.body.key);
  if (caller.role !== "proxy_admin" && !(await isTeamAdmin(ctx, caller, k.team_id))) {
    requireAdmin(caller, input.route);
  }
  const now = ctx.now();
  await ctx.repo.updateKey(k.token, { blocked, updated_at: now, updated_by: caller.user_id });
  ctx.cache.invalidate("key", k.token);
  const row = (await ctx.repo.getKey(k.token))!;
  return ok({ token: row.token, ...(await keyView(ctx, row)) });
}

export const blockKey = (i: HandlerInput) => setBlocked(i, true);
export const unblockKey = (i: HandlerInput) => setBlocked(i, false);

export async function listKeys({ caller, query, ctx }: HandlerInput): Promise<HandlerResult> {
  const page = queryInt(query, "page", 1, 1_000_000);
  const size = queryInt(query, "size", 10, 100);
  const filter = {
    ...(query.get("user_id") ? { user_id: query.get("user_id")! } : {}),
    ...(query.get("team_id") ? { team_id: query.get("team_id")! } : {}),
    ...(query.get("key_alias") ? { key_alias: query.get("key_alias")! } : {}),
    ...(query.get("organization_id") ? { organization_id: query.get("organization_id")! } : {}),
  };
  let visibleTo: { user_id: string | null; team_ids: string[] } | undefined;
  if (!canReadAll(caller)) {
    const adminOf =
      caller.user_id === null
        ? []
        : (await ctx.repo.membershipsOfUser(caller.user_id)).filter((m) => m.role === "admin").map((m) => m.team_id);
    visibleTo = { user_id: caller.user_id, team_ids: adminOf };
  }
  const { rows, total } = await ctx.repo.listKeys({ page, size, ...filter, ...(visibleTo ? { visibleTo } : {}) });
  const full = query.get("return_full_object") === "true";
  const keys = full
    ? await Promise.all(rows.map(async (k) => ({ token: k.token, ...(await keyView(ctx, k)) })))
    : rows.map((k) => k.token);
  return ok({ keys, total_count: total, current_page: page, total_pages: Math.ceil(total / size) });
}

export async function regenerateKey(input: HandlerInput): Promise<HandlerResult> {
  const { caller, fields, ctx } = input;
  const existing = await findKey(ctx, fields.body.key);
  if (!(await canManageKey(ctx, caller, existing))) {
    throw forbidden(
      `You can only regenerate your own keys or your team's keys (as team admin). Key=${existing.key_name}`,
    );
  }
  if (fields.has("grace_period"))
    throw badRequest("grace_period is not supported: the old key stops working at once", "grace_period");
  const custom = fields.str("new_key") ?? null;
  if (custom !== null && !custom.startsWith("sk-"))
    throw badRequest("Invalid key format. LiteLLM Virtual Key must start with 'sk-'.", "new_key");
  const v = readKeyFields(fields);
  if (v.key_alias != null && v.key_alias !== existing.key_alias) await aliasTaken(ctx, v.key_alias, existing.token);
  const now = ctx.now();
  const secret = custom ?? generateSecret();
  const token = hashSecret(secret);
  const patch: Partial<Key> & { token: string } = {
    ...keyPatch(v, fields, existing, now),
    token,
    key_name: keyNameOf(secret),
    updated_at: now,
    updated_by: caller.user_id,
  };
  // The row keeps its key_id: budgets and limits keep counting where they were.
  const n = await ctx.repo.rekey(existing.token, patch);
  if (n === 0) throw notFound("Key not found in database.", "key");
  ctx.cache.invalidate("key", existing.token);
  ctx.cache.invalidate("key", token);
  const row = (await ctx.repo.getKey(token))!;
  return ok(await generateResponse(ctx, row, secret, v.duration ?? null));
}

export { readKeyFields };
