import type { Database as SQLiteDatabase } from "better-sqlite3";
import { type Kysely, sql, type Transaction } from "kysely";
import type { Pool as PgPool } from "pg";
import type {
  BudgetRow,
  ChargedPeriod,
  Database,
  EndUserRow,
  KeyRow,
  OrganizationMemberRow,
  OrganizationRow,
  SpendLogRow,
  TeamMemberRow,
  TeamRow,
  UserRow,
} from "./schema.js";

/** A JSON object as stored in the `text` JSON columns. */
export type JsonObject = Record<string, unknown>;

/** One `model_max_budget` entry, in either of LiteLLM's spellings. */
export interface ModelBudgetEntry {
  max_budget?: number | string | null;
  budget_duration?: string | null;
  budget_limit?: number | string | null;
  time_period?: string | null;
  tpm_limit?: number | null;
  rpm_limit?: number | null;
}

type Replace<T, R> = Omit<T, keyof R> & R;

/** Decoded entities: JSON columns parsed, flags as booleans. Field names are LiteLLM's. */
export type Budget = Replace<BudgetRow, { model_max_budget: Record<string, ModelBudgetEntry> | null }>;
export type Organization = Replace<OrganizationRow, { metadata: JsonObject; models: string[] }>;
export type OrganizationMember = OrganizationMemberRow;
export type Team = Replace<
  TeamRow,
  { metadata: JsonObject; models: string[]; blocked: boolean; model_max_budget: Record<string, ModelBudgetEntry> }
>;
export type TeamMember = TeamMemberRow;
export type User = Replace<
  UserRow,
  { models: string[]; metadata: JsonObject; model_max_budget: Record<string, ModelBudgetEntry> }
>;
export type Key = Replace<
  KeyRow,
  {
    models: string[];
    aliases: JsonObject;
    config: JsonObject;
    permissions: JsonObject;
    metadata: JsonObject;
    allowed_cache_controls: string[];
    model_max_budget: Record<string, ModelBudgetEntry>;
    blocked: boolean;
  }
>;
export type EndUser = Replace<EndUserRow, { blocked: boolean }>;
export type SpendLog = Replace<SpendLogRow, { metadata: JsonObject; request_tags: string[]; budgets?: string | null }>;

type TableName = keyof Database;

/** How each table's JSON and flag columns are stored. */
const CODECS: Record<TableName, { json: string[]; flags: string[] }> = {
  budgets: { json: ["model_max_budget"], flags: [] },
  organizations: { json: ["metadata", "models"], flags: [] },
  organization_members: { json: [], flags: [] },
  teams: { json: ["metadata", "models", "model_max_budget"], flags: ["blocked"] },
  team_members: { json: [], flags: [] },
  users: { json: ["models", "metadata", "model_max_budget"], flags: [] },
  virtual_keys: {
    json: ["models", "aliases", "config", "permissions", "metadata", "allowed_cache_controls", "model_max_budget"],
    flags: ["blocked"],
  },
  end_users: { json: [], flags: ["blocked"] },
  spend_logs: { json: ["metadata", "request_tags"], flags: [] },
  budget_period_spend: { json: [], flags: [] },
};

function decode<T>(table: TableName, row: Record<string, unknown> | undefined): T | undefined {
  if (row === undefined) return undefined;
  const out: Record<string, unknown> = { ...row };
  const codec = CODECS[table];
  for (const f of codec.json) {
    const v = out[f];
    out[f] = typeof v === "string" ? JSON.parse(v) : v;
  }
  for (const f of codec.flags) out[f] = out[f] === 1 || out[f] === true;
  return out as T;
}

function encode(table: TableName, obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const codec = CODECS[table];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (codec.json.includes(k)) out[k] = v === null ? null : JSON.stringify(v);
    else if (codec.flags.includes(k)) out[k] = v ? 1 : 0;
    else out[k] = v;
  }
  return out;
}

/** One page of a list. */
export interface Page<T> {
  rows: T[];
  total: number;
}

/** Filters of the spend log queries. */
export interface SpendLogFilter {
  api_key?: string;
  user_id?: string;
  team_id?: string;
  end_user?: string;
  model?: string;
  key_alias?: string;
  request_id?: string;
  status?: string;
  /** Inclusive start (ms). */
  from?: number;
  /** Exclusive end (ms). */
  to?: number;
}

/** A spend-log row with the budget periods it was charged to. */
export interface LedgerRow {
  log: SpendLog;
  budgets: ChargedPeriod[];
}

/** Totals one ledger batch adds to entities. */
export interface SpendDeltas {
  keys: Map<string, number>;
  users: Map<string, number>;
  teams: Map<string, number>;
  members: Map<string, { team_id: string; user_id: string; nano: number }>;
  organizations: Map<string, number>;
  endUsers: Map<string, number>;
}

/** Group-by dimensions of spend reports. */
export type SpendGroup = "team" | "api_key" | "end_user" | "model" | "user";

const GROUP_COLUMN: Record<SpendGroup, "team_id" | "api_key" | "end_user" | "model" | "user_id"> = {
  team: "team_id",
  api_key: "api_key",
  end_user: "end_user",
  model: "model",
  user: "user_id",
};

/**
 * Data access for the management API and the ledger: every query is parameterized (no string is ever spliced
 * into SQL). The same code runs on SQLite and PostgreSQL.
 */
export class Repository {
  constructor(
    readonly db: Kysely<Database> | Transaction<Database>,
    readonly dialect: "sqlite" | "postgres",
    /** The better-sqlite3 connection under `db` (SQLite): the ledger's fast path. */
    private readonly sqlite?: SQLiteDatabase,
    /** The pg pool under `db` (PostgreSQL): the ledger's fast path. */
    private readonly pool?: PgPool,
  ) {}

  private sqliteStatements?: ReturnType<typeof prepareLedger>;

  /** Runs `fn` in one transaction (SQLite: serialized; PostgreSQL: read committed). */
  async transaction<T>(fn: (repo: Repository) => Promise<T>): Promise<T> {
    if (this.db.isTransaction) return fn(this);
    return (this.db as Kysely<Database>).transaction().execute((trx) => fn(new Repository(trx, this.dialect)));
  }

  // ---- generic helpers ----------------------------------------------------------------------------------------

  private async insert(table: TableName, obj: object): Promise<void> {
    // biome-ignore lint/suspicious/noExplicitAny: table names are generic here; rows are checked by the callers' types
    await (this.db as any)
      .insertInto(table)
      .values(encode(table, obj as Record<string, unknown>))
      .execute();
  }

  private async getBy<T>(table: TableName, where: Record<string, unknown>): Promise<T | undefined> {
    // biome-ignore lint/suspicious/noExplicitAny: see insert
    let q = (this.db as any).selectFrom(table).selectAll();
    for (const [k, v] of Object.entries(where)) q = q.where(k, "=", v);
    return decode<T>(table, await q.executeTakeFirst());
  }

  /** Updates the given columns; returns the number of rows changed. */
  private async patch(table: TableName, where: Record<string, unknown>, patch: object): Promise<number> {
    const values = encode(table, patch as Record<string, unknown>);
    if (Object.keys(values).length === 0) return (await this.getBy(table, where)) === undefined ? 0 : 1;
    // biome-ignore lint/suspicious/noExplicitAny: see insert
    let q = (this.db as any).updateTable(table).set(values);
    for (const [k, v] of Object.entries(where)) q = q.where(k, "=", v);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows ?? 0);
  }

  private async deleteIn(table: TableName, column: string, values: string[]): Promise<number> {
    if (values.length === 0) return 0;
    // biome-ignore lint/suspicious/noExplicitAny: see insert
    const r = await (this.db as any).deleteFrom(table).where(column, "in", values).executeTakeFirst();
    return Number(r.numDeletedRows ?? 0);
  }

  // ---- budgets ------------------------------------------------------------------------------------------------

  insertBudget(b: Budget): Promise<void> {
    return this.insert("budgets", b);
  }
  getBudget(id: string): Promise<Budget | undefined> {
    return this.getBy("budgets", { budget_id: id });
  }
  async getBudgets(ids: string[]): Promise<Budget[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom("budgets").selectAll().where("budget_id", "in", ids).execute();
    return rows.map((r) => decode<Budget>("budgets", r)!);
  }
  updateBudget(id: string, patch: Partial<Budget>): Promise<number> {
    return this.patch("budgets", { budget_id: id }, patch);
  }
  deleteBudgets(ids: string[]): Promise<number> {
    return this.deleteIn("budgets", "budget_id", ids);
  }
  async listBudgets(): Promise<Budget[]> {
    const rows = await this.db.selectFrom("budgets").selectAll().orderBy("created_at").orderBy("budget_id").execute();
    return rows.map((r) => decode<Budget>("budgets", r)!);
  }
  /** Whether any entity still refers to a budget (deleting it would silently lift their limits). */
  async budgetInUse(id: string): Promise<string | undefined> {
    const checks: Array<[TableName, string]> = [
      ["virtual_keys", "key"],
      ["end_users", "end user"],
      ["team_members", "team member"],
      ["organizations", "organization"],
      ["organization_members", "organization member"],
    ];
    for (const [table, what] of checks) {
      // biome-ignore lint/suspicious/noExplicitAny: see insert
      const row = await (this.db as any)
        .selectFrom(table)
        .select("budget_id")
        .where("budget_id", "=", id)
        .executeTakeFirst();
      if (row) return what;
    }
    return undefined;
  }

  // ---- organizations ------------------------------------------------------------------------------------------

  insertOrganization(o: Organization): Promise<void> {
    return this.insert("organizations", o);
  }
  getOrganization(id: string): Promise<Organization | undefined> {
    return this.getBy("organizations", { organization_id: id });
  }
  updateOrganization(id: string, patch: Partial<Organization>): Promise<number> {
    return this.patch("organizations", { organization_id: id }, patch);
  }
  deleteOrganizations(ids: string[]): Promise<number> {
    return this.deleteIn("organizations", "organization_id", ids);
  }
  async listOrganizations(): Promise<Organization[]> {
    const rows = await this.db.selectFrom("organizations").selectAll().orderBy("created_at").execute();
    return rows.map((r) => decode<Organization>("organizations", r)!);
  }
  async organizationMembers(id: string): Promise<OrganizationMember[]> {
    return this.db
      .selectFrom("organization_members")
      .selectAll()
      .where("organization_id", "=", id)
      .orderBy("created_at")
      .orderBy("user_id")
      .execute();
  }
  getOrganizationMember(orgId: string, userId: string): Promise<OrganizationMember | undefined> {
    return this.getBy("organization_members", { organization_id: orgId, user_id: userId });
  }
  insertOrganizationMember(m: OrganizationMember): Promise<void> {
    return this.insert("organization_members", m);
  }
  updateOrganizationMember(orgId: string, userId: string, patch: Partial<OrganizationMember>): Promise<number> {
    return this.patch("organization_members", { organization_id: orgId, user_id: userId }, patch);
  }
  async deleteOrganizationMembersOf(orgIds: string[]): Promise<number> {
    return this.deleteIn("organization_members", "organization_id", orgIds);
  }

  // ---- teams --------------------------------------------------------------------------------------------------

  insertTeam(t: Team): Promise<void> {
    return this.insert("teams", t);
  }
  getTeam(id: string): Promise<Team | undefined> {
    return this.getBy("teams", { team_id: id });
  }
  async getTeams(ids: string[]): Promise<Team[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom("teams").selectAll().where("team_id", "in", ids).execute();
    return rows.map((r) => decode<Team>("teams", r)!);
  }
  updateTeam(id: string, patch: Partial<Team>): Promise<number> {
    return this.patch("teams", { team_id: id }, patch);
  }
  deleteTeams(ids: string[]): Promise<number> {
    return this.deleteIn("teams", "team_id", ids);
  }
  async listTeams(filter: { user_id?: string; organization_id?: string } = {}): Promise<Team[]> {
    let q = this.db.selectFrom("teams").selectAll("teams");
    if (filter.organization_id !== undefined) q = q.where("organization_id", "=", filter.organization_id);
    if (filter.user_id !== undefined) {
      const uid = filter.user_id;
      q = q.where("team_id", "in", (sub) =>
        sub.selectFrom("team_members").select("team_members.team_id").where("team_members.user_id", "=", uid),
      );
    }
    const rows = await q.orderBy("created_at").orderBy("team_id").execute();
    return rows.map((r) => decode<Team>("teams", r)!);
  }
  async teamMembers(teamId: string): Promise<TeamMember[]> {
    return this.db
      .selectFrom("team_members")
      .selectAll()
      .where("team_id", "=", teamId)
      .orderBy("created_at")
      .orderBy("user_id")
      .execute();
  }
  async teamMembersOf(teamIds: string[]): Promise<TeamMember[]> {
    if (teamIds.length === 0) return [];
    return this.db
      .selectFrom("team_members")
      .selectAll()
      .where("team_id", "in", teamIds)
      .orderBy("created_at")
      .orderBy("user_id")
      .execute();
  }
  getTeamMember(teamId: string, userId: string): Promise<TeamMember | undefined> {
    return this.getBy("team_members", { team_id: teamId, user_id: userId });
  }
  async membershipsOfUser(userId: string): Promise<TeamMember[]> {
    return this.db.selectFrom("team_members").selectAll().where("user_id", "=", userId).orderBy("team_id").execute();
  }
  insertTeamMember(m: TeamMember): Promise<void> {
    return this.insert("team_members", m);
  }
  updateTeamMember(teamId: string, userId: string, patch: Partial<TeamMember>): Promise<number> {
    return this.patch("team_members", { team_id: teamId, user_id: userId }, patch);
  }
  async deleteTeamMember(teamId: string, userId: string): Promise<number> {
    const r = await this.db
      .deleteFrom("team_members")
      .where("team_id", "=", teamId)
      .where("user_id", "=", userId)
      .executeTakeFirst();
    return Number(r.numDeletedRows ?? 0);
  }
  deleteTeamMembersOfTeams(teamIds: string[]): Promise<number> {
    return this.deleteIn("team_members", "team_id", teamIds);
  }
  deleteTeamMembersOfUsers(userIds: string[]): Promise<number> {
    return this.deleteIn("team_members", "user_id", userIds);
  }

  // ---- users --------------------------------------------------------------------------------------------------

  insertUser(u: User): Promise<void> {
    return this.insert("users", u);
  }
  getUser(id: string): Promise<User | undefined> {
    return this.getBy("users", { user_id: id });
  }
  async getUserByEmail(email: string): Promise<User | undefined> {
    const row = await this.db.selectFrom("users").selectAll().where("user_email", "=", email).executeTakeFirst();
    return decode<User>("users", row);
  }
  updateUser(id: string, patch: Partial<User>): Promise<number> {
    return this.patch("users", { user_id: id }, patch);
  }
  deleteUsers(ids: string[]): Promise<number> {
    return this.deleteIn("users", "user_id", ids);
  }
  async listUsers(opts: { page: number; size: number; role?: string; user_ids?: string[] }): Promise<Page<User>> {
    let q = this.db.selectFrom("users");
    if (opts.role !== undefined) q = q.where("user_role", "=", opts.role);
    if (opts.user_ids !== undefined) q = q.where("user_id", "in", opts.user_ids.length ? opts.user_ids : [""]);
    const total = Number((await q.select((eb) => eb.fn.countAll().as("n")).executeTakeFirst())?.n ?? 0);
    const rows = await q
      .selectAll()
      .orderBy("created_at")
      .orderBy("user_id")
      .limit(opts.size)
      .offset((opts.page - 1) * opts.size)
      .execute();
    return { rows: rows.map((r) => decode<User>("users", r)!), total };
  }

  // ---- keys ---------------------------------------------------------------------------------------------------

  insertKey(k: Key): Promise<void> {
    return this.insert("virtual_keys", k);
  }
  getKey(token: string): Promise<Key | undefined> {
    return this.getBy("virtual_keys", { token });
  }
  async getKeys(tokens: string[]): Promise<Key[]> {
    if (tokens.length === 0) return [];
    const rows = await this.db.selectFrom("virtual_keys").selectAll().where("token", "in", tokens).execute();
    return rows.map((r) => decode<Key>("virtual_keys", r)!);
  }
  async getKeysByAlias(aliases: string[]): Promise<Key[]> {
    if (aliases.length === 0) return [];
    const rows = await this.db.selectFrom("virtual_keys").selectAll().where("key_alias", "in", aliases).execute();
    return rows.map((r) => decode<Key>("virtual_keys", r)!);
  }
  async keyTokensWhere(filter: { user_id?: string; team_id?: string }): Promise<string[]> {
    let q = this.db.selectFrom("virtual_keys").select("token");
    if (filter.user_id !== undefined) q = q.where("user_id", "=", filter.user_id);
    if (filter.team_id !== undefined) q = q.where("team_id", "=", filter.team_id);
    return (await q.execute()).map((r) => r.token);
  }
  updateKey(token: string, patch: Partial<Key>): Promise<number> {
    return this.patch("virtual_keys", { token }, patch);
  }
  /** Replaces a key's primary key (regenerate): same row, new hash and name. */
  async rekey(oldToken: string, patch: Partial<Key> & { token: string }): Promise<number> {
    return this.patch("virtual_keys", { token: oldToken }, patch);
  }
  deleteKeys(tokens: string[]): Promise<number> {
    return this.deleteIn("virtual_keys", "token", tokens);
  }
  async listKeys(opts: {
    page: number;
    size: number;
    user_id?: string;
    team_id?: string;
    /** Callers limited to their own keys and their teams' keys. */
    visibleTo?: { user_id: string | null; team_ids: string[] };
    key_alias?: string;
    organization_id?: string;
  }): Promise<Page<Key>> {
    let q = this.db.selectFrom("virtual_keys");
    if (opts.user_id !== undefined) q = q.where("user_id", "=", opts.user_id);
    if (opts.team_id !== undefined) q = q.where("team_id", "=", opts.team_id);
    if (opts.key_alias !== undefined) q = q.where("key_alias", "=", opts.key_alias);
    if (opts.organization_id !== undefined) q = q.where("organization_id", "=", opts.organization_id);
    const visible = opts.visibleTo;
    if (visible !== undefined) {
      if (visible.user_id === null && visible.team_ids.length === 0) return { rows: [], total: 0 };
      q = q.where((eb) =>
        eb.or([
          ...(visible.user_id === null ? [] : [eb("user_id", "=", visible.user_id)]),
          ...(visible.team_ids.length ? [eb("team_id", "in", visible.team_ids)] : []),
        ]),
      );
    }
    const total = Number((await q.select((eb) => eb.fn.countAll().as("n")).executeTakeFirst())?.n ?? 0);
    const rows = await q
      .selectAll()
      .orderBy("created_at")
      .orderBy("token")
      .limit(opts.size)
      .offset((opts.page - 1) * opts.size)
      .execute();
    return { rows: rows.map((r) => decode<Key>("virtual_keys", r)!), total };
  }

  /** Every key (start-up hydration). */
  async allKeys(): Promise<Key[]> {
    const rows = await this.db.selectFrom("virtual_keys").selectAll().execute();
    return rows.map((r) => decode<Key>("virtual_keys", r)!);
  }
  async allUsers(): Promise<User[]> {
    const rows = await this.db.selectFrom("users").selectAll().execute();
    return rows.map((r) => decode<User>("users", r)!);
  }
  async allTeamMembers(): Promise<TeamMember[]> {
    return this.db.selectFrom("team_members").selectAll().execute();
  }

  // ---- end users ----------------------------------------------------------------------------------------------

  insertEndUser(e: EndUser): Promise<void> {
    return this.insert("end_users", e);
  }
  getEndUser(id: string): Promise<EndUser | undefined> {
    return this.getBy("end_users", { user_id: id });
  }
  updateEndUser(id: string, patch: Partial<EndUser>): Promise<number> {
    return this.patch("end_users", { user_id: id }, patch);
  }
  deleteEndUsers(ids: string[]): Promise<number> {
    return this.deleteIn("end_users", "user_id", ids);
  }
  async listEndUsers(): Promise<EndUser[]> {
    const rows = await this.db.selectFrom("end_users").selectAll().orderBy("created_at").orderBy("user_id").execute();
    return rows.map((r) => decode<EndUser>("end_users", r)!);
  }

  // ---- ledger -------------------------------------------------------------------------------------------------

  /**
   * Writes one batch of finished requests in one transaction: the spend-log rows not already present (a request id
   * is written once, whatever the retries: `ON CONFLICT DO NOTHING`, and only the rows inserted count), their budget
   * periods, and each entity's `spend` increased by the new rows only. Returns the number of new rows. SQLite needs
   * the raw connection (`DatabaseHandle.sqlite`).
   */
  async writeLedger(batch: LedgerRow[], now: number): Promise<number> {
    if (batch.length === 0) return 0;
    if (this.db.isTransaction) throw new Error("writeLedger runs in its own transaction");
    if (this.sqlite !== undefined) return this.writeLedgerSqlite(batch, now);
    if (this.pool === undefined)
      throw new Error("writeLedger needs the raw connection (DatabaseHandle.sqlite or .pool)");
    return this.writeLedgerPostgres(batch, now);
  }

  /**
   * SQLite: one transaction of prepared statements (better-sqlite3 is synchronous: the whole batch is written
   * without yielding, so nothing else runs between its statements). Refuses while a Kysely transaction is open on the
   * connection (its statements would join it); the ledger retries on its next tick.
   */
  private writeLedgerSqlite(batch: LedgerRow[], now: number): number {
    const db = this.sqlite!;
    if (db.inTransaction) throw new Error("SQLITE_BUSY: a management transaction is open; the ledger retries");
    this.sqliteStatements ??= prepareLedger(db);
    const st = this.sqliteStatements;
    return db.transaction(() => {
      const fresh: SpendLog[] = [];
      const periods = new Map<string, { end: number | null; nano: number }>();
      for (const b of batch) {
        const l = b.log;
        const info = st.log.run(
          l.request_id,
          l.call_type,
          l.api_key,
          l.key_id,
          l.spend_nano,
          l.total_tokens,
          l.prompt_tokens,
          l.completion_tokens,
          l.start_time,
          l.end_time,
          l.model,
          l.model_group,
          l.api_base,
          l.user_id,
          l.team_id,
          l.organization_id,
          l.end_user,
          l.key_alias,
          l.status,
          JSON.stringify(l.metadata),
          JSON.stringify(l.request_tags),
          l.requester_ip_address,
          b.budgets.length === 0 ? null : JSON.stringify(b.budgets.map((w) => w.budget)),
        );
        if (info.changes === 0) continue;
        fresh.push(l);
        addPeriods(periods, b.budgets);
      }
      for (const [budget, p] of periods) st.period.run(budget, p.end, p.nano);
      const d = spendDeltas(fresh);
      for (const [id, n] of d.keys) if (n !== 0) st.key.run(n, id);
      for (const [id, n] of d.users) if (n !== 0) st.user.run(n, id);
      for (const [id, n] of d.teams) if (n !== 0) st.team.run(n, id);
      for (const [id, n] of d.organizations) if (n !== 0) st.org.run(n, id);
      for (const m of d.members.values()) if (m.nano !== 0) st.member.run(m.nano, m.team_id, m.user_id);
      for (const [id, n] of d.endUsers) st.endUser.run(id, n, now);
      return fresh.length;
    })();
  }

  /**
   * PostgreSQL: multi-row inserts of up to 1000 rows (parameters, no array literals to build), then a handful of
   * statements for the period totals and the entities' spend, in one transaction on one pooled connection.
   */
  private async writeLedgerPostgres(batch: LedgerRow[], now: number): Promise<number> {
    const unique = new Map<string, LedgerRow>();
    for (const b of batch) if (!unique.has(b.log.request_id)) unique.set(b.log.request_id, b);
    const all = [...unique.values()];
    const client = await this.pool!.connect();
    try {
      await client.query("BEGIN");
      const inserted = new Set<string>();
      for (let i = 0; i < all.length; i += PG_ROWS_PER_INSERT) {
        const chunk = all.slice(i, i + PG_ROWS_PER_INSERT);
        const values: unknown[] = [];
        for (const b of chunk) {
          const l = b.log;
          values.push(
            l.request_id,
            l.call_type,
            l.api_key,
            l.key_id,
            l.spend_nano,
            l.total_tokens,
            l.prompt_tokens,
            l.completion_tokens,
            l.start_time,
            l.end_time,
            l.model,
            l.model_group,
            l.api_base,
            l.user_id,
            l.team_id,
            l.organization_id,
            l.end_user,
            l.key_alias,
            l.status,
            JSON.stringify(l.metadata),
            JSON.stringify(l.request_tags),
            l.requester_ip_address,
            b.budgets.length === 0 ? null : JSON.stringify(b.budgets.map((w) => w.budget)),
          );
        }
        const r = await client.query<{ request_id: string }>(pgInsertText(chunk.length), values);
        for (const row of r.rows) inserted.add(row.request_id);
      }
      const fresh = all.filter((b) => inserted.has(b.log.request_id));
      if (fresh.length > 0) {
        const periods = new Map<string, { end: number | null; nano: number }>();
        for (const b of fresh) addPeriods(periods, b.budgets);
        if (periods.size > 0) {
          const p = [...periods];
          await client.query(
            `INSERT INTO budget_period_spend (budget, period_end, spend_nano)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
             ON CONFLICT (budget) DO UPDATE SET spend_nano = budget_period_spend.spend_nano + excluded.spend_nano`,
            [p.map(([k]) => k), p.map(([, v]) => v.end), p.map(([, v]) => v.nano)],
          );
        }
        const d = spendDeltas(fresh.map((b) => b.log));
        const add = async (table: string, column: string, m: Map<string, number>) => {
          const e = [...m].filter(([, n]) => n !== 0);
          if (e.length === 0) return;
          await client.query(
            `UPDATE ${table} AS t SET spend_nano = t.spend_nano + d.n
             FROM unnest($1::text[], $2::bigint[]) AS d(id, n) WHERE t.${column} = d.id`,
            [e.map(([id]) => id), e.map(([, n]) => n)],
          );
        };
        await add("virtual_keys", "key_id", d.keys);
        await add("users", "user_id", d.users);
        await add("teams", "team_id", d.teams);
        await add("organizations", "organization_id", d.organizations);
        const ms = [...d.members.values()].filter((m) => m.nano !== 0);
        if (ms.length > 0) {
          await client.query(
            `UPDATE team_members AS t SET spend_nano = t.spend_nano + d.n
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(team_id, user_id, n)
             WHERE t.team_id = d.team_id AND t.user_id = d.user_id`,
            [ms.map((m) => m.team_id), ms.map((m) => m.user_id), ms.map((m) => m.nano)],
          );
        }
        const eu = [...d.endUsers];
        if (eu.length > 0) {
          await client.query(
            `INSERT INTO end_users (user_id, alias, spend_nano, allowed_model_region, default_model, budget_id, blocked, created_at)
             SELECT d.id, NULL, d.n, NULL, NULL, NULL, 0, $3::bigint
             FROM unnest($1::text[], $2::bigint[]) AS d(id, n)
             ON CONFLICT (user_id) DO UPDATE SET spend_nano = end_users.spend_nano + excluded.spend_nano`,
            [eu.map(([id]) => id), eu.map(([, n]) => n), now],
          );
        }
      }
      await client.query("COMMIT");
      return fresh.length;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** Spend of every budget period still open at `now` (never-ending periods included), from the ledger. */
  async openPeriodTotals(now: number): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom("budget_period_spend")
      .select(["budget", "spend_nano"])
      .where((eb) => eb.or([eb("period_end", "is", null), eb("period_end", ">", now)]))
      .execute();
    return new Map(rows.map((r) => [r.budget, Number(r.spend_nano)]));
  }

  /** Spend charged to the given budget periods (store keys), from the ledger. */
  async periodTotals(budgets: string[]): Promise<Map<string, number>> {
    if (budgets.length === 0) return new Map();
    const rows = await this.db
      .selectFrom("budget_period_spend")
      .select(["budget", "spend_nano"])
      .where("budget", "in", budgets)
      .execute();
    return new Map(rows.map((r) => [r.budget, Number(r.spend_nano)]));
  }

  async hasSpendLog(requestId: string): Promise<boolean> {
    return (
      (await this.db
        .selectFrom("spend_logs")
        .select("request_id")
        .where("request_id", "=", requestId)
        .executeTakeFirst()) !== undefined
    );
  }

  private filtered(f: SpendLogFilter) {
    let q = this.db.selectFrom("spend_logs");
    if (f.api_key !== undefined) q = q.where("api_key", "=", f.api_key);
    if (f.user_id !== undefined) q = q.where("user_id", "=", f.user_id);
    if (f.team_id !== undefined) q = q.where("team_id", "=", f.team_id);
    if (f.end_user !== undefined) q = q.where("end_user", "=", f.end_user);
    if (f.model !== undefined) q = q.where("model", "=", f.model);
    if (f.key_alias !== undefined) q = q.where("key_alias", "=", f.key_alias);
    if (f.request_id !== undefined) q = q.where("request_id", "=", f.request_id);
    if (f.status !== undefined) q = q.where("status", "=", f.status);
    if (f.from !== undefined) q = q.where("start_time", ">=", f.from);
    if (f.to !== undefined) q = q.where("start_time", "<", f.to);
    return q;
  }

  async spendLogs(f: SpendLogFilter, page?: { page: number; size: number }): Promise<Page<SpendLog>> {
    const q = this.filtered(f);
    const total = Number((await q.select((eb) => eb.fn.countAll().as("n")).executeTakeFirst())?.n ?? 0);
    let rows = q.selectAll().orderBy("start_time", "desc").orderBy("request_id", "desc");
    if (page) rows = rows.limit(page.size).offset((page.page - 1) * page.size);
    const out = await rows.execute();
    return { rows: out.map((r) => decode<SpendLog>("spend_logs", r)!), total };
  }

  /** Total spend (nano) of the rows matching `f`. */
  async spendTotal(f: SpendLogFilter): Promise<number> {
    const r = await this.filtered(f)
      .select((eb) => eb.fn.sum<number>("spend_nano").as("total"))
      .executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  /**
   * Spend per UTC day and group value, for `/global/spend/report`: rows `{ day: "YYYY-MM-DD", group, spend_nano,
   * requests, prompt_tokens, completion_tokens, total_tokens }`.
   */
  async spendReport(
    f: SpendLogFilter,
    group: SpendGroup,
  ): Promise<
    Array<{
      day: string;
      group: string | null;
      spend_nano: number;
      requests: number;
      prompt_tokens: number;
      completion_tokens: number;
      total_tokens: number;
    }>
  > {
    const col = GROUP_COLUMN[group];
    const dayExpr =
      this.dialect === "postgres"
        ? sql<string>`to_char(to_timestamp(start_time / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
        : sql<string>`strftime('%Y-%m-%d', start_time / 1000, 'unixepoch')`;
    const rows = await this.filtered(f)
      .select((eb) => [
        dayExpr.as("day"),
        eb.ref(col).as("grp"),
        eb.fn.sum<number>("spend_nano").as("spend_nano"),
        eb.fn.countAll<number>().as("requests"),
        eb.fn.sum<number>("prompt_tokens").as("prompt_tokens"),
        eb.fn.sum<number>("completion_tokens").as("completion_tokens"),
        eb.fn.sum<number>("total_tokens").as("total_tokens"),
      ])
      .groupBy([dayExpr, col])
      .orderBy(dayExpr)
      .orderBy(col)
      .execute();
    return rows.map((r) => ({
      day: String(r.day),
      group: (r.grp as string | null) ?? null,
      spend_nano: Number(r.spend_nano ?? 0),
      requests: Number(r.requests ?? 0),
      prompt_tokens: Number(r.prompt_tokens ?? 0),
      completion_tokens: Number(r.completion_tokens ?? 0),
      total_tokens: Number(r.total_tokens ?? 0),
    }));
  }
}

const LEDGER_COLUMNS = 23;
/** Rows per PostgreSQL insert: 23 000 parameters, well under the protocol's 65 535. */
const PG_ROWS_PER_INSERT = 1000;
const pgInsertTexts = new Map<number, string>();

/** The multi-row insert of `n` spend-log rows (cached per `n`). */
function pgInsertText(n: number): string {
  let text = pgInsertTexts.get(n);
  if (text === undefined) {
    const rows: string[] = [];
    for (let r = 0; r < n; r++) {
      const p: string[] = [];
      for (let c = 1; c <= LEDGER_COLUMNS; c++) p.push(`$${r * LEDGER_COLUMNS + c}`);
      rows.push(`(${p.join(",")})`);
    }
    text = `INSERT INTO spend_logs (request_id, call_type, api_key, key_id, spend_nano, total_tokens, prompt_tokens,
      completion_tokens, start_time, end_time, model, model_group, api_base, user_id, team_id, organization_id,
      end_user, key_alias, status, metadata, request_tags, requester_ip_address, budgets)
      VALUES ${rows.join(",")} ON CONFLICT (request_id) DO NOTHING RETURNING request_id`;
    if (pgInsertTexts.size > 64) pgInsertTexts.clear();
    pgInsertTexts.set(n, text);
  }
  return text;
}

/** Adds a row's charged periods to a batch's per-period totals. */
function addPeriods(into: Map<string, { end: number | null; nano: number }>, periods: ChargedPeriod[]): void {
  for (const w of periods) {
    const cur = into.get(w.budget);
    if (cur === undefined) into.set(w.budget, { end: w.period_end, nano: w.spend_nano });
    else cur.nano += w.spend_nano;
  }
}

/** The ledger's prepared statements on a SQLite connection. */
function prepareLedger(db: SQLiteDatabase) {
  return {
    log: db.prepare(
      `INSERT INTO spend_logs (request_id, call_type, api_key, key_id, spend_nano, total_tokens, prompt_tokens,
        completion_tokens, start_time, end_time, model, model_group, api_base, user_id, team_id, organization_id,
        end_user, key_alias, status, metadata, request_tags, requester_ip_address, budgets)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (request_id) DO NOTHING`,
    ),
    period: db.prepare(
      `INSERT INTO budget_period_spend (budget, period_end, spend_nano) VALUES (?, ?, ?)
       ON CONFLICT (budget) DO UPDATE SET spend_nano = spend_nano + excluded.spend_nano`,
    ),
    key: db.prepare("UPDATE virtual_keys SET spend_nano = spend_nano + ? WHERE key_id = ?"),
    user: db.prepare("UPDATE users SET spend_nano = spend_nano + ? WHERE user_id = ?"),
    team: db.prepare("UPDATE teams SET spend_nano = spend_nano + ? WHERE team_id = ?"),
    org: db.prepare("UPDATE organizations SET spend_nano = spend_nano + ? WHERE organization_id = ?"),
    member: db.prepare("UPDATE team_members SET spend_nano = spend_nano + ? WHERE team_id = ? AND user_id = ?"),
    endUser: db.prepare(
      `INSERT INTO end_users (user_id, alias, spend_nano, allowed_model_region, default_model, budget_id, blocked, created_at)
       VALUES (?, NULL, ?, NULL, NULL, NULL, 0, ?)
       ON CONFLICT (user_id) DO UPDATE SET spend_nano = spend_nano + excluded.spend_nano`,
    ),
  };
}

/** What a batch of spend-log rows adds to each entity (failures add 0 and are skipped). */
export function spendDeltas(logs: SpendLog[]): SpendDeltas {
  const d: SpendDeltas = {
    keys: new Map(),
    users: new Map(),
    teams: new Map(),
    members: new Map(),
    organizations: new Map(),
    endUsers: new Map(),
  };
  const bump = (m: Map<string, number>, k: string | null, n: number) => {
    if (k === null || k === "") return;
    m.set(k, (m.get(k) ?? 0) + n);
  };
  for (const l of logs) {
    const n = l.spend_nano;
    bump(d.keys, l.key_id, n);
    bump(d.users, l.user_id, n);
    bump(d.teams, l.team_id, n);
    bump(d.organizations, l.organization_id, n);
    bump(d.endUsers, l.end_user, n);
    if (l.team_id && l.user_id) {
      const k = `${l.team_id}\u0000${l.user_id}`;
      const m = d.members.get(k) ?? { team_id: l.team_id, user_id: l.user_id, nano: 0 };
      m.nano += n;
      d.members.set(k, m);
    }
  }
  return d;
}
