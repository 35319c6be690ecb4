import type { JsonObject, SpendGroup, SpendLog, SpendLogFilter } from "../db/repository.js";
import { canReadAll, type HandlerInput, type HandlerResult, iso, ok, usd } from "./context.js";
import { badRequest } from "./errors.js";
import { tokenOf } from "./secrets.js";
import { queryDate, queryInt } from "./validate.js";

/** A spend-log row in LiteLLM's `LiteLLM_SpendLogs` shape. */
export function spendLogView(l: SpendLog): JsonObject {
  return {
    request_id: l.request_id,
    call_type: l.call_type,
    api_key: l.api_key,
    spend: usd(l.spend_nano),
    total_tokens: l.total_tokens,
    prompt_tokens: l.prompt_tokens,
    completion_tokens: l.completion_tokens,
    startTime: iso(l.start_time),
    endTime: iso(l.end_time),
    request_duration_ms: l.end_time - l.start_time,
    model: l.model,
    model_group: l.model_group,
    api_base: l.api_base,
    user: l.user_id ?? "",
    team_id: l.team_id,
    organization_id: l.organization_id,
    end_user: l.end_user ?? "",
    metadata: {
      ...l.metadata,
      user_api_key_alias: l.key_alias,
      user_api_key_team_id: l.team_id,
      user_api_key_user_id: l.user_id,
    },
    cache_hit: "False",
    request_tags: l.request_tags,
    requester_ip_address: l.requester_ip_address,
    status: l.status,
  };
}

/** The filters every spend route accepts; non-admins only ever see their own user's rows. */
function filterOf({ caller, query }: HandlerInput): SpendLogFilter {
  const f: SpendLogFilter = {};
  const key = query.get("api_key");
  if (key) {
    const t = tokenOf(key);
    if (t === undefined) throw badRequest("api_key must be a key (sk-...) or its hash", "api_key");
    f.api_key = t;
  }
  for (const name of ["user_id", "team_id", "end_user", "model", "key_alias", "request_id"] as const) {
    const v = query.get(name);
    if (v) f[name] = v;
  }
  const status = query.get("status_filter") ?? query.get("status");
  if (status) {
    if (status !== "success" && status !== "failure")
      throw badRequest(`status_filter must be "success" or "failure"`, "status_filter");
    f.status = status;
  }
  const from = queryDate(query, "start_date");
  const to = queryDate(query, "end_date", true);
  if (from !== undefined) f.from = from;
  if (to !== undefined) f.to = to;
  if (from !== undefined && to !== undefined && to < from)
    throw badRequest("end_date is before start_date", "end_date");
  if (!canReadAll(caller)) {
    if (f.user_id !== undefined && f.user_id !== caller.user_id) {
      throw badRequest(`You can only view your own spend (user_id=${caller.user_id})`, "user_id");
    }
    // A key without a user sees only its own rows.
    if (caller.user_id === null) f.api_key = caller.token ?? "";
    else f.user_id = caller.user_id;
  }
  return f;
}

export async function spendLogs(input: HandlerInput): Promise<HandlerResult> {
  const { rows } = await input.ctx.repo.spendLogs(filterOf(input));
  return ok(rows.map(spendLogView));
}

export async function spendLogsV2(input: HandlerInput): Promise<HandlerResult> {
  const page = queryInt(input.query, "page", 1, 1_000_000);
  const size = queryInt(input.query, "page_size", 50, 100);
  const { rows, total } = await input.ctx.repo.spendLogs(filterOf(input), { page, size });
  return ok({ data: rows.map(spendLogView), total, page, page_size: size, total_pages: Math.ceil(total / size) });
}

export async function globalSpend(input: HandlerInput): Promise<HandlerResult> {
  const total = await input.ctx.repo.spendTotal(filterOf(input));
  return ok({ spend: usd(total), max_budget: input.ctx.settings.maxBudget ?? 0 });
}

const GROUPS: Record<string, { group: SpendGroup; list: string; name: string }> = {
  team: { group: "team", list: "teams", name: "team_name" },
  customer: { group: "end_user", list: "customers", name: "customer" },
  end_user: { group: "end_user", list: "customers", name: "customer" },
  api_key: { group: "api_key", list: "api_keys", name: "api_key" },
  model: { group: "model", list: "models", name: "model" },
  user: { group: "user", list: "users", name: "user_id" },
};

/** `/global/spend/report`: spend per UTC day, grouped by team (default), customer, api_key, model or user. */
export async function spendReport(input: HandlerInput): Promise<HandlerResult> {
  const by = input.query.get("group_by") ?? "team";
  const g = GROUPS[by];
  if (g === undefined) throw badRequest(`group_by must be one of ${Object.keys(GROUPS).join(", ")}`, "group_by");
  const rows = await input.ctx.repo.spendReport(filterOf(input), g.group);
  const days = new Map<string, JsonObject[]>();
  for (const r of rows) {
    const list = days.get(r.day) ?? [];
    list.push({
      [g.name]: r.group,
      total_spend: usd(r.spend_nano),
      total_requests: r.requests,
      total_input_tokens: r.prompt_tokens,
      total_output_tokens: r.completion_tokens,
      total_tokens: r.total_tokens,
    });
    days.set(r.day, list);
  }
  return ok([...days].map(([day, list]) => ({ group_by_day: day, [g.list]: list })));
}
