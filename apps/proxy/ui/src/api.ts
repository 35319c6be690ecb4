/**
 * The management API client: LiteLLM's endpoints and shapes (keys, teams, users, organizations, customers, budgets,
 * spend), plus Tollgate's two read-only UI endpoints (`/tollgate/whoami`, `/tollgate/limits`).
 * Every error becomes an {@link ApiError} with the server's readable message and the field it names.
 */

/** An API error: status, OpenAI-shaped `type`/`param`, and a message a person can read. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string | null = null,
    /** The request field the server blames (OpenAI's `param`), when it names one. */
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Reads any of the error bodies a LiteLLM-compatible server sends into an {@link ApiError}. */
export function errorFrom(status: number, body: unknown, statusText = ""): ApiError {
  const fallback = status === 0 ? "The proxy could not be reached." : `${status} ${statusText}`.trim();
  if (typeof body === "string") return new ApiError(status, body.trim() || fallback);
  if (typeof body !== "object" || body === null) return new ApiError(status, fallback);
  const b = body as Record<string, unknown>;
  if (Array.isArray(b.detail)) {
    // FastAPI-style validation errors: [{loc: [..., field], msg}]
    const first = b.detail[0] as { loc?: unknown[]; msg?: string } | undefined;
    const loc = first?.loc;
    const field = Array.isArray(loc) ? String(loc[loc.length - 1]) : null;
    return new ApiError(status, first?.msg ?? fallback, "invalid_request_error", field);
  }
  const e = b.error ?? b.detail;
  if (typeof e === "string") return new ApiError(status, e);
  if (typeof e === "object" && e !== null) {
    const o = e as Record<string, unknown>;
    const message = typeof o.message === "string" ? o.message : typeof o.error === "string" ? o.error : fallback;
    const param = typeof o.param === "string" && o.param !== "None" && o.param !== "" ? o.param : null;
    return new ApiError(status, message, typeof o.type === "string" ? o.type : null, param);
  }
  if (typeof b.message === "string") return new ApiError(status, b.message);
  return new ApiError(status, fallback);
}

export type Query = Record<string, string | number | boolean | null | undefined>;

/** Calls the proxy at `base` with the signed-in person's key. */
export class Api {
  constructor(
    readonly key: string,
    readonly base = "",
  ) {}

  async request<T>(method: "GET" | "POST", path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
    let url = this.base + path;
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query))
        if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    } catch {
      throw errorFrom(0, null);
    }
    const text = await res.text();
    let data: unknown = text;
    try {
      data = text === "" ? null : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    if (!res.ok) throw errorFrom(res.status, data, res.statusText);
    return data as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, { query });
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, { body });
  }

  // identity
  whoami(): Promise<WhoAmI> {
    return this.get("/tollgate/whoami");
  }

  // keys
  listKeys(q: {
    page: number;
    size: number;
    key_alias?: string;
    team_id?: string;
    user_id?: string;
  }): Promise<KeyList> {
    return this.get("/key/list", { ...q, return_full_object: true });
  }
  keyInfo(key: string): Promise<{ key: string; info: KeyRecord }> {
    return this.get("/key/info", { key });
  }
  generateKey(body: Record<string, unknown>): Promise<KeyRecord & { key: string }> {
    return this.post("/key/generate", body);
  }
  updateKey(key: string, body: Record<string, unknown>): Promise<unknown> {
    return this.post("/key/update", { ...body, key });
  }
  deleteKeys(keys: string[]): Promise<{ deleted_keys: string[] }> {
    return this.post("/key/delete", { keys });
  }
  blockKey(key: string, blocked: boolean): Promise<unknown> {
    return this.post(blocked ? "/key/block" : "/key/unblock", { key });
  }
  regenerateKey(key: string): Promise<KeyRecord & { key: string }> {
    return this.post("/key/regenerate", { key });
  }

  // teams
  listTeams(): Promise<TeamRecord[]> {
    return this.get<TeamRecord[] | { teams: TeamRecord[] }>("/team/list").then(listOf("teams"));
  }
  teamInfo(team_id: string): Promise<TeamInfo> {
    return this.get("/team/info", { team_id });
  }

  // the rest follow LiteLLM's list endpoints (arrays, or paginated objects)
  listUsers(q: { page: number; page_size: number; user_ids?: string }): Promise<UserList> {
    return this.get("/user/list", q);
  }
  listOrgs(): Promise<Record<string, unknown>[]> {
    return this.get<Record<string, unknown>[]>("/organization/list").then(listOf("organizations"));
  }
  listCustomers(): Promise<Record<string, unknown>[]> {
    return this.get<Record<string, unknown>[]>("/customer/list").then(listOf("customers"));
  }
  listBudgets(): Promise<Record<string, unknown>[]> {
    return this.get<Record<string, unknown>[]>("/budget/list").then(listOf("budgets"));
  }

  // spend
  /** LiteLLM's daily report: `[{group_by_day, <teams|customers|api_keys|models>: [{…, total_spend, total_requests}]}]`. */
  spendReport(q: {
    start_date: string;
    end_date: string;
    group_by: string;
  }): Promise<Array<Record<string, unknown> & { group_by_day: string }>> {
    return this.get("/global/spend/report", q);
  }
  spendLogs(q: Query): Promise<SpendLogPage> {
    return this.get("/spend/logs/v2", q);
  }

  // live limits
  limits(q: { key?: string; team_id?: string }): Promise<LiveLimits> {
    return this.get("/tollgate/limits", q);
  }

  // models
  models(): Promise<{ data: ModelEntry[] }> {
    return this.get("/model/info");
  }
}

function listOf<T>(field: string): (v: unknown) => T[] {
  return (v) => {
    if (Array.isArray(v)) return v as T[];
    if (typeof v === "object" && v !== null) {
      const inner = (v as Record<string, unknown>)[field] ?? (v as Record<string, unknown>).data;
      if (Array.isArray(inner)) return inner as T[];
    }
    return [];
  };
}

export interface WhoAmI {
  role: string;
  user_id: string | null;
  team_id: string | null;
  key_alias: string | null;
  key_name?: string | null;
  /** Teams of the user and their role in each. */
  teams?: { team_id: string; team_alias?: string | null; role: string }[];
}

export interface KeyRecord {
  token?: string;
  key_name?: string | null;
  key_alias?: string | null;
  spend?: number;
  max_budget?: number | null;
  soft_budget?: number | null;
  budget_duration?: string | null;
  budget_reset_at?: string | null;
  tpm_limit?: number | null;
  rpm_limit?: number | null;
  max_parallel_requests?: number | null;
  models?: string[];
  team_id?: string | null;
  user_id?: string | null;
  organization_id?: string | null;
  budget_id?: string | null;
  blocked?: boolean | null;
  expires?: string | null;
  metadata?: Record<string, unknown>;
  model_max_budget?: Record<string, unknown>;
  model_rpm_limit?: Record<string, number> | null;
  model_tpm_limit?: Record<string, number> | null;
  created_at?: string;
  [k: string]: unknown;
}

export interface KeyList {
  keys: (KeyRecord | string)[];
  total_count: number;
  current_page: number;
  total_pages: number;
}

export interface TeamRecord {
  team_id: string;
  team_alias?: string | null;
  organization_id?: string | null;
  spend?: number;
  max_budget?: number | null;
  budget_duration?: string | null;
  tpm_limit?: number | null;
  rpm_limit?: number | null;
  max_parallel_requests?: number | null;
  models?: string[];
  blocked?: boolean;
  members_with_roles?: { user_id?: string | null; user_email?: string | null; role: string }[];
  metadata?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface TeamMembership {
  user_id: string;
  team_id: string;
  spend?: number;
  budget_id?: string | null;
  litellm_budget_table?: { max_budget?: number | null; rpm_limit?: number | null; tpm_limit?: number | null } | null;
}

export interface TeamInfo {
  team_id: string;
  team_info: TeamRecord;
  keys?: KeyRecord[];
  team_memberships?: TeamMembership[];
}

export interface UserList {
  users: Record<string, unknown>[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}

export type GroupBy = "api_key" | "team" | "model" | "end_user";

/** Spend and requests per day and group, for the charts. */
export interface SpendDaily {
  /** UTC days `YYYY-MM-DD`, every day of the range. */
  days: string[];
  series: { id: string; label: string; spend: number[]; requests: number[] }[];
}

export interface SpendLogRow {
  request_id: string;
  api_key?: string;
  key_alias?: string | null;
  team_id?: string | null;
  user?: string | null;
  end_user?: string | null;
  /** The deployment's model (LiteLLM: the model called). */
  model?: string;
  /** The public model name the client asked for. */
  model_group?: string;
  spend?: number;
  total_tokens?: number;
  prompt_tokens?: number;
  completion_tokens?: number;
  startTime?: string;
  endTime?: string;
  status?: string;
  [k: string]: unknown;
}

export interface SpendLogPage {
  data: SpendLogRow[];
  total: number;
  page: number;
  page_size: number;
  total_pages: number;
}

export interface LiveLimit {
  /** Scope of the limit (`api_key`, `team`, `user`, `team_member`, `end_user`, `organization`, `model_per_key`, …). */
  scope: string;
  /** What it limits: `requests` (per minute), `tokens` (per minute), `max_parallel_requests`. */
  type: string;
  /** The model of a per-model limit. */
  model?: string | null;
  limit: number;
  used: number;
  remaining: number;
  /** When the window ends (ms since epoch); for in-flight, the earliest lease expiry. */
  reset_at: number | null;
  window_ms?: number | null;
}

export interface LiveBudget {
  scope: string;
  model?: string | null;
  spend: number;
  reserved: number;
  max_budget: number | null;
  soft_budget: number | null;
  budget_duration: string | null;
  reset_at: number | null;
}

export interface LiveLimits {
  subject: { kind: "key" | "team"; id: string; label: string | null };
  /** The server's clock (ms). */
  now: number;
  limits: LiveLimit[];
  budgets: LiveBudget[];
}

export interface ModelEntry {
  model_name: string;
  litellm_params?: Record<string, unknown>;
  model_info?: Record<string, unknown>;
}
