import type { JsonObject } from "../db/repository.js";
import type { Authenticator, Headers } from "./auth.js";
import * as budgets from "./budgets.js";
import type { HandlerInput, HandlerResult, ManagementContext } from "./context.js";
import { adminOnly } from "./context.js";
import * as customers from "./customers.js";
import { ApiError, badRequest, type ErrorBody, forbidden, toApiError, unauthorized } from "./errors.js";
import type { Caller } from "./identity.js";
import * as keys from "./keys.js";
import * as orgs from "./organizations.js";
import * as spend from "./spend.js";
import * as teams from "./teams.js";
import * as users from "./users.js";
import { Fields, parseJsonObject } from "./validate.js";

/**
 * Who may call a route before the handler's own checks (LiteLLM's route check):
 * - `admin`: proxy admins; read-only admins for reads;
 * - `key`: key management — internal users too (the handler limits them to their own and their teams' keys);
 * - `info`, `spend`: every caller (the handler limits what they see);
 * - `self`: every caller; the handler checks team admin rights (`/team/member_*`).
 */
type Access = "admin" | "key" | "info" | "spend" | "self";

interface Route {
  methods: string[];
  path: string;
  /** Changes state (read-only admins are refused with 403). */
  write: boolean;
  access: Access;
  handler: (input: HandlerInput) => Promise<HandlerResult>;
}

const R = (
  methods: string | string[],
  path: string,
  access: Access,
  write: boolean,
  handler: Route["handler"],
): Route => ({
  methods: typeof methods === "string" ? [methods] : methods,
  path,
  access,
  write,
  handler,
});

/** Every management route, with LiteLLM's paths and methods. */
export const ROUTES: readonly Route[] = [
  R("POST", "/key/generate", "key", true, keys.generateKey),
  R("POST", "/key/update", "key", true, keys.updateKey),
  R("GET", "/key/info", "info", false, keys.keyInfo),
  R("POST", "/key/delete", "key", true, keys.deleteKeys),
  R("POST", "/key/block", "key", true, keys.blockKey),
  R("POST", "/key/unblock", "key", true, keys.unblockKey),
  R("GET", "/key/list", "info", false, keys.listKeys),
  R("POST", "/key/regenerate", "key", true, keys.regenerateKey),

  R("POST", "/user/new", "admin", true, users.newUser),
  R("GET", "/user/info", "info", false, users.userInfo),
  R("POST", "/user/update", "admin", true, users.updateUser),
  R("POST", "/user/delete", "admin", true, users.deleteUsers),
  R("GET", "/user/list", "self", false, users.listUsers),

  R("POST", "/team/new", "admin", true, teams.newTeam),
  R("POST", "/team/update", "admin", true, teams.updateTeam),
  R("POST", "/team/delete", "admin", true, teams.deleteTeams),
  R("GET", "/team/info", "info", false, teams.teamInfo),
  R("GET", "/team/list", "info", false, teams.listTeams),
  R("POST", "/team/member_add", "self", true, teams.memberAdd),
  R("POST", "/team/member_delete", "self", true, teams.memberDelete),
  R("POST", "/team/member_update", "self", true, teams.memberUpdate),
  R("POST", "/team/block", "admin", true, teams.blockTeam),
  R("POST", "/team/unblock", "admin", true, teams.unblockTeam),

  R("POST", "/organization/new", "admin", true, orgs.newOrganization),
  R(["PATCH", "POST"], "/organization/update", "admin", true, orgs.updateOrganization),
  R(["DELETE", "POST"], "/organization/delete", "admin", true, orgs.deleteOrganizations),
  R("GET", "/organization/info", "admin", false, orgs.organizationInfo),
  R("GET", "/organization/list", "info", false, orgs.listOrganizations),
  R("POST", "/organization/member_add", "admin", true, orgs.organizationMemberAdd),

  ...(["customer", "end_user"] as const).flatMap((p) => [
    R("POST", `/${p}/new`, "admin", true, customers.newCustomer),
    R("GET", `/${p}/info`, "admin", false, customers.customerInfo),
    R("GET", `/${p}/list`, "admin", false, customers.listCustomers),
    R("POST", `/${p}/update`, "admin", true, customers.updateCustomer),
    R("POST", `/${p}/delete`, "admin", true, customers.deleteCustomers),
    R("POST", `/${p}/block`, "admin", true, customers.blockCustomers),
    R("POST", `/${p}/unblock`, "admin", true, customers.unblockCustomers),
  ]),

  R("POST", "/budget/new", "admin", true, budgets.newBudget),
  R("POST", "/budget/update", "admin", true, budgets.updateBudget),
  R("POST", "/budget/info", "admin", false, budgets.budgetInfo),
  R("GET", "/budget/list", "admin", false, budgets.listBudgets),
  R("POST", "/budget/delete", "admin", true, budgets.deleteBudget),

  R("GET", "/spend/logs", "spend", false, spend.spendLogs),
  R("GET", "/spend/logs/v2", "spend", false, spend.spendLogsV2),
  R("GET", "/global/spend", "spend", false, spend.globalSpend),
  R("GET", "/global/spend/report", "spend", false, spend.spendReport),
];

const BY_PATH = new Map<string, Route[]>();
for (const r of ROUTES) {
  const list = BY_PATH.get(r.path) ?? [];
  list.push(r);
  BY_PATH.set(r.path, list);
}
/** `/key/{key}/regenerate` (LiteLLM's path form). */
const REGENERATE_PATH = /^\/key\/([^/]+)\/regenerate$/;

/** LiteLLM's route check: which roles reach which routes (the handlers then check ownership). */
function routeCheck(caller: Caller, route: Route, path: string): void {
  if (caller.role === "proxy_admin") return;
  if (caller.role === "proxy_admin_viewer") {
    if (route.write)
      throw forbidden(`user not allowed to access this route, role= ${caller.role}. Trying to access: ${path}`);
    return;
  }
  switch (route.access) {
    case "info":
    case "spend":
    case "self":
      return;
    case "key":
      if (caller.role === "internal_user") return;
      adminOnly(caller, path);
      break;
    case "admin":
      adminOnly(caller, path);
  }
}

/** One management request as the HTTP layer hands it over. */
export interface ManagementRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  headers: Headers;
  query: URLSearchParams;
  /** The raw body (UTF-8), undefined when there is none. */
  body?: string;
}

export interface ManagementResponse {
  status: number;
  body: unknown;
}

/** The management API: route lookup, authentication, LiteLLM's route check, body parsing, the handler, errors. */
export class ManagementApi {
  constructor(
    readonly ctx: ManagementContext,
    readonly auth: Authenticator,
  ) {}

  /** Whether `path` is a management route (any method). */
  handles(path: string): boolean {
    return BY_PATH.has(path) || REGENERATE_PATH.test(path);
  }

  /** The paths of every route (for route registration). */
  paths(): string[] {
    return [...BY_PATH.keys()];
  }

  /** Authenticates the request's key, then {@link handleAs}. */
  async handle(req: ManagementRequest): Promise<ManagementResponse> {
    let caller: Caller;
    try {
      caller = (await this.auth.authenticate(req.headers)).caller;
    } catch (err) {
      const e = toApiError(err);
      return { status: e.status, body: e.toBody() satisfies ErrorBody };
    }
    let body: unknown;
    try {
      body = req.body === undefined || req.method.toUpperCase() === "GET" ? undefined : parseJsonObject(req.body);
    } catch (err) {
      const e = toApiError(err);
      return { status: e.status, body: e.toBody() };
    }
    return this.handleAs(caller, req.method, req.path, req.query, body);
  }

  /**
   * Serves one management call for an authenticated caller (the proxy's route handler calls this with the
   * identity its auth step resolved). `body` is the parsed JSON (anything: a non-object is a 400).
   */
  async handleAs(
    caller: Caller | undefined,
    method: string,
    rawPath: string,
    query: URLSearchParams,
    body: unknown,
  ): Promise<ManagementResponse> {
    try {
      let path = rawPath;
      const m = REGENERATE_PATH.exec(path);
      let pathKey: string | undefined;
      if (m !== null) {
        path = "/key/regenerate";
        pathKey = decodeURIComponent(m[1]!);
      }
      const candidates = BY_PATH.get(path);
      if (candidates === undefined) {
        return { status: 404, body: new ApiError(404, "not_found_error", `Unknown route ${rawPath}`, null).toBody() };
      }
      const route = candidates.find((r) => r.methods.includes(method.toUpperCase()));
      if (route === undefined) {
        const allowed = candidates.flatMap((r) => r.methods).join(", ");
        return {
          status: 405,
          body: new ApiError(
            405,
            "method_not_allowed",
            `Method ${method} not allowed on ${path}; use ${allowed}`,
            null,
          ).toBody(),
        };
      }
      if (caller === undefined || caller.kind === "anonymous") {
        throw unauthorized("No api key passed in. The management API needs the master key or a virtual key.");
      }
      routeCheck(caller, route, path);
      let parsed: JsonObject;
      if (route.methods.includes("GET") || body === undefined || body === null) parsed = {};
      else if (typeof body !== "object" || Array.isArray(body))
        throw badRequest("The request body must be a JSON object", "body");
      else parsed = body as JsonObject;
      if (pathKey !== undefined) parsed = { ...parsed, key: pathKey };
      const input: HandlerInput = {
        caller,
        body: parsed,
        fields: new Fields(parsed),
        query,
        route: path,
        ctx: this.ctx,
      };
      return await route.handler(input);
    } catch (err) {
      const e = toApiError(err);
      return { status: e.status, body: e.toBody() satisfies ErrorBody };
    }
  }
}
