import type { Budget, EndUser, Key, Organization, Repository, Team, TeamMember, User } from "../db/repository.js";
import type { EndUserBundle, KeyBundle } from "./identity.js";

/** The entities the request path caches. Member ids are `<team_id>\u0000<user_id>`. */
export type EntityKind = "key" | "user" | "team" | "member" | "organization" | "budget" | "end_user";

/** Tells other instances that an entity changed (Redis pub/sub), so they drop their copy. */
export interface InvalidationBus {
  publish(kind: EntityKind, id: string): void;
  /** Called for every message from another instance; `"*"` as kind means "drop everything" (lost messages). */
  onMessage(handler: (kind: EntityKind | "*", id: string) => void): void;
  close(): Promise<void>;
}

/** Options of {@link EntityCache}. */
export interface EntityCacheOptions {
  /**
   * After this long a cached entity is re-read from the database in the background (the request keeps the cached
   * copy meanwhile, never waiting). Without a shared Redis this is how long a change made on another instance takes
   * to show; with Redis, changes arrive by pub/sub within milliseconds and this is only a safety net.
   * @default 2000 without a bus, 60000 with one
   */
  refreshMs?: number;
  /** Most entries kept per entity kind (oldest dropped first). @default 200000 */
  maxEntries?: number;
  /**
   * While the database is down, keep serving the entities already cached (a request for an unknown key then gets
   * 503). `false`: a failed background refresh drops the entity, so its next request fails with 503 too.
   * @default true
   */
  serveStaleOnError?: boolean;
  now?: () => number;
}

interface Entry<T> {
  value: T | null;
  at: number;
}

/** One kind's entries: loaded once (single flight), refreshed in the background, dropped on invalidation. */
class Slots<T> {
  readonly map = new Map<string, Entry<T>>();
  private readonly loading = new Map<string, Promise<T | null>>();

  constructor(
    private readonly load: (id: string) => Promise<T | null>,
    private readonly opts: { refreshMs: number; maxEntries: number; serveStaleOnError: boolean; now: () => number },
  ) {}

  /** The cached entry (possibly stale; a stale one starts a background refresh), or undefined when not cached. */
  peek(id: string): Entry<T> | undefined {
    const e = this.map.get(id);
    if (e !== undefined && this.opts.now() - e.at >= this.opts.refreshMs && !this.loading.has(id)) {
      this.fetch(id).catch(() => {
        if (!this.opts.serveStaleOnError) this.map.delete(id);
      });
    }
    return e;
  }

  /** The cached value, else loads it (one load per id at a time). */
  async get(id: string): Promise<T | null> {
    const e = this.map.get(id);
    if (e !== undefined) return e.value;
    return this.fetch(id);
  }

  fetch(id: string): Promise<T | null> {
    const pending = this.loading.get(id);
    if (pending !== undefined) return pending;
    const p: Promise<T | null> = this.load(id).then(
      (value) => {
        // An invalidation that arrived while loading wins: this (possibly older) answer is not cached.
        if (this.loading.get(id) === p) {
          this.loading.delete(id);
          this.set(id, value);
        }
        return value;
      },
      (err) => {
        if (this.loading.get(id) === p) this.loading.delete(id);
        throw err;
      },
    );
    this.loading.set(id, p);
    return p;
  }

  set(id: string, value: T | null): void {
    this.map.delete(id);
    this.map.set(id, { value, at: this.opts.now() });
    if (this.map.size > this.opts.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }

  drop(id: string): void {
    this.map.delete(id);
    this.loading.delete(id);
  }

  clear(): void {
    this.map.clear();
    this.loading.clear();
  }
}

export const memberId = (teamId: string, userId: string): string => `${teamId}\u0000${userId}`;

/**
 * The request path's view of the database: keys and everything they depend on, end users and budgets, in memory.
 * A request for a cached key never waits for the database; updates made through the management API on this
 * instance take effect at once (the handler drops the entity before answering), on other instances through the
 * {@link InvalidationBus} (or, without one, after `refreshMs`).
 */
export class EntityCache {
  readonly keys: Slots<Key>;
  readonly users: Slots<User>;
  readonly teams: Slots<Team>;
  readonly members: Slots<TeamMember>;
  readonly organizations: Slots<Organization>;
  readonly budgets: Slots<Budget>;
  readonly endUsers: Slots<EndUser>;
  private readonly now: () => number;
  readonly refreshMs: number;

  constructor(
    private repo: Repository,
    private readonly bus: InvalidationBus | undefined,
    options: EntityCacheOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.refreshMs = options.refreshMs ?? (bus === undefined ? 2_000 : 60_000);
    const o = {
      refreshMs: this.refreshMs,
      maxEntries: options.maxEntries ?? 200_000,
      serveStaleOnError: options.serveStaleOnError ?? true,
      now: this.now,
    };
    this.keys = new Slots((id) => this.repo.getKey(id).then((v) => v ?? null), o);
    this.users = new Slots((id) => this.repo.getUser(id).then((v) => v ?? null), o);
    this.teams = new Slots((id) => this.repo.getTeam(id).then((v) => v ?? null), o);
    this.members = new Slots((id) => {
      const [team, user] = id.split("\u0000") as [string, string];
      return this.repo.getTeamMember(team, user).then((v) => v ?? null);
    }, o);
    this.organizations = new Slots((id) => this.repo.getOrganization(id).then((v) => v ?? null), o);
    this.budgets = new Slots((id) => this.repo.getBudget(id).then((v) => v ?? null), o);
    this.endUsers = new Slots((id) => this.repo.getEndUser(id).then((v) => v ?? null), o);
    bus?.onMessage((kind, id) => {
      if (kind === "*") this.clear();
      else this.slots(kind).drop(id);
    });
  }

  private slots(kind: EntityKind): Slots<unknown> {
    switch (kind) {
      case "key":
        return this.keys;
      case "user":
        return this.users;
      case "team":
        return this.teams;
      case "member":
        return this.members;
      case "organization":
        return this.organizations;
      case "budget":
        return this.budgets;
      case "end_user":
        return this.endUsers;
    }
  }

  /** Drops an entity here and tells the other instances. Call after the database write committed. */
  invalidate(kind: EntityKind, id: string): void {
    this.slots(kind).drop(id);
    this.bus?.publish(kind, id);
  }

  clear(): void {
    for (const k of ["key", "user", "team", "member", "organization", "budget", "end_user"] as const)
      this.slots(k).clear();
  }

  /**
   * A key's bundle from memory only: the bundle, `null` for a key known not to exist, or `undefined` when something
   * it needs is not cached yet (call {@link loadKey}).
   */
  peekKey(token: string): KeyBundle | null | undefined {
    const k = this.keys.peek(token);
    if (k === undefined) return undefined;
    const key = k.value;
    if (key === null) return null;
    const need = <T>(slots: Slots<T>, id: string | null): T | null | undefined => {
      if (id === null) return null;
      const e = slots.peek(id);
      return e === undefined ? undefined : e.value;
    };
    const keyBudget = need(this.budgets, key.budget_id);
    const user = need(this.users, key.user_id);
    const team = need(this.teams, key.team_id);
    if (keyBudget === undefined || user === undefined || team === undefined) return undefined;
    const member =
      key.team_id !== null && key.user_id !== null ? need(this.members, memberId(key.team_id, key.user_id)) : null;
    if (member === undefined) return undefined;
    const defaultMemberBudget =
      typeof team?.metadata.team_member_budget_id === "string" ? team.metadata.team_member_budget_id : null;
    const memberBudget = need(
      this.budgets,
      member?.budget_id ?? (key.team_id !== null && key.user_id !== null ? defaultMemberBudget : null),
    );
    const orgId = key.organization_id ?? team?.organization_id ?? null;
    const organization = need(this.organizations, orgId);
    if (memberBudget === undefined || organization === undefined) return undefined;
    const organizationBudget = need(this.budgets, organization?.budget_id ?? null);
    if (organizationBudget === undefined) return undefined;
    return { key, keyBudget, user, team, member, memberBudget, organization, organizationBudget };
  }

  /** Loads whatever {@link peekKey} misses (database reads), then answers like it. */
  async loadKey(token: string): Promise<KeyBundle | null> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const got = this.peekKey(token);
      if (got !== undefined) return got;
      const key = await this.keys.get(token);
      if (key === null) return null;
      const [team, user] = await Promise.all([
        key.team_id === null ? null : this.teams.get(key.team_id),
        key.user_id === null ? null : this.users.get(key.user_id),
        key.budget_id === null ? null : this.budgets.get(key.budget_id),
      ]);
      void user;
      const member =
        key.team_id !== null && key.user_id !== null
          ? await this.members.get(memberId(key.team_id, key.user_id))
          : null;
      const defaultMemberBudget =
        typeof team?.metadata.team_member_budget_id === "string" ? team.metadata.team_member_budget_id : null;
      const memberBudgetId =
        member?.budget_id ?? (key.team_id !== null && key.user_id !== null ? defaultMemberBudget : null);
      const orgId = key.organization_id ?? team?.organization_id ?? null;
      const [, org] = await Promise.all([
        memberBudgetId === null ? null : this.budgets.get(memberBudgetId),
        orgId === null ? null : this.organizations.get(orgId),
      ]);
      if (org?.budget_id) await this.budgets.get(org.budget_id);
    }
    // Entities kept changing under us (concurrent invalidations): read once more without the cache's help.
    const got = this.peekKey(token);
    if (got === undefined) throw new Error(`key ${token} could not be loaded consistently`);
    return got;
  }

  /** An end user's bundle from memory, or undefined when not cached. */
  peekEndUser(id: string): EndUserBundle | undefined {
    const e = this.endUsers.peek(id);
    if (e === undefined) return undefined;
    const row = e.value;
    if (row?.budget_id == null) return { id, row, budget: null };
    const b = this.budgets.peek(row.budget_id);
    if (b === undefined) return undefined;
    return { id, row, budget: b.value };
  }

  async loadEndUser(id: string): Promise<EndUserBundle> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const got = this.peekEndUser(id);
      if (got !== undefined) return got;
      const row = await this.endUsers.get(id);
      if (row?.budget_id) await this.budgets.get(row.budget_id);
    }
    const got = this.peekEndUser(id);
    if (got === undefined) throw new Error(`end user ${id} could not be loaded consistently`);
    return got;
  }
}
