/**
 * What the signed-in person may see and change, from their role (LiteLLM's roles) and the teams they administer.
 * The UI only hides what the API would refuse; the API checks every call anyway. Pure: unit-tested in Node.
 */

import type { WhoAmI } from "./api";

export type Role =
  | "proxy_admin"
  | "proxy_admin_viewer"
  | "internal_user"
  | "internal_user_viewer"
  | "team"
  | "customer"
  | "anonymous";

export interface Me {
  role: Role;
  userId: string | null;
  /** The key's team (a team key), if any. */
  teamId: string | null;
  keyAlias: string | null;
  /** Teams where this user is an `admin` member. */
  adminTeams: readonly string[];
  /** Every team this user is a member of. */
  teams: readonly string[];
}

export type Page =
  | "keys"
  | "teams"
  | "users"
  | "orgs"
  | "customers"
  | "budgets"
  | "spend"
  | "logs"
  | "limits"
  | "models";

export const PAGES: { page: Page; label: string }[] = [
  { page: "keys", label: "Keys" },
  { page: "teams", label: "Teams" },
  { page: "users", label: "Users" },
  { page: "orgs", label: "Organizations" },
  { page: "customers", label: "End users" },
  { page: "budgets", label: "Budgets" },
  { page: "spend", label: "Spend" },
  { page: "logs", label: "Logs" },
  { page: "limits", label: "Live limits" },
  { page: "models", label: "Models" },
];

export const ROLE_LABELS: Record<Role, string> = {
  proxy_admin: "Proxy admin",
  proxy_admin_viewer: "Proxy admin (viewer)",
  internal_user: "Internal user",
  internal_user_viewer: "Internal user (viewer)",
  team: "Team key",
  customer: "End user",
  anonymous: "Open proxy",
};

/** Whether the role sees everything (admin or admin viewer; an open proxy has no roles). */
export function seesAll(me: Me): boolean {
  return me.role === "proxy_admin" || me.role === "proxy_admin_viewer" || me.role === "anonymous";
}

export function isAdmin(me: Me): boolean {
  return me.role === "proxy_admin" || me.role === "anonymous";
}

export function isViewer(me: Me): boolean {
  return me.role === "proxy_admin_viewer" || me.role === "internal_user_viewer" || me.role === "customer";
}

/** Pages in the navigation. */
export function visiblePages(me: Me): Page[] {
  const all = PAGES.map((p) => p.page);
  if (seesAll(me)) return all;
  return all.filter(
    (p) => p === "keys" || p === "teams" || p === "spend" || p === "logs" || p === "limits" || p === "models",
  );
}

export function isTeamAdmin(me: Me, teamId: string | null | undefined): boolean {
  return teamId !== null && teamId !== undefined && me.adminTeams.includes(teamId);
}

/** The target of a key action: the key's owner and team. */
export interface KeyTarget {
  user_id?: string | null;
  team_id?: string | null;
}

export type KeyAction = "create" | "update" | "delete" | "regenerate" | "block";

/** LiteLLM's rules: admins do everything; team admins manage their team's keys; internal users their own keys (no block). */
export function canKey(me: Me, action: KeyAction, key?: KeyTarget): boolean {
  if (isAdmin(me)) return true;
  if (isViewer(me) || me.role !== "internal_user") return false;
  if (action === "create") return true;
  if (key === undefined) return false;
  if (isTeamAdmin(me, key.team_id)) return true;
  if (action === "block") return false;
  return key.user_id !== null && key.user_id !== undefined && key.user_id === me.userId;
}

export type TeamAction = "create" | "update" | "delete" | "members" | "block";

export function canTeam(me: Me, action: TeamAction, teamId?: string): boolean {
  if (isAdmin(me)) return true;
  if (action === "create" || action === "delete" || action === "block") return false;
  return me.role === "internal_user" && isTeamAdmin(me, teamId);
}

/** Users, organizations, end users and budgets: proxy admins only. */
export function canAdminister(me: Me): boolean {
  return isAdmin(me);
}

const ROLES = new Set<Role>(Object.keys(ROLE_LABELS) as Role[]);

/** The signed-in person from `/tollgate/whoami`; an unknown role is treated as a viewer. */
export function meOf(w: WhoAmI): Me {
  const role = (ROLES.has(w.role as Role) ? w.role : "internal_user_viewer") as Role;
  const teams = w.teams ?? [];
  return {
    role,
    userId: w.user_id ?? null,
    teamId: w.team_id ?? null,
    keyAlias: w.key_alias ?? null,
    adminTeams: teams.filter((t) => t.role === "admin").map((t) => t.team_id),
    teams: teams.map((t) => t.team_id),
  };
}
