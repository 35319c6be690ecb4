import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from "kysely";

/**
 * The proxy's migrations, applied at start on SQLite and PostgreSQL alike (Kysely's migrator: a lock table, one
 * transaction per migration; several instances starting together apply each migration once). Append only: never
 * edit a migration that has shipped.
 */
const migrations: Record<string, Migration> = {
  "0001_entities_and_ledger": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("budgets")
        .addColumn("budget_id", "text", (c) => c.primaryKey())
        .addColumn("max_budget", "double precision")
        .addColumn("soft_budget", "double precision")
        .addColumn("max_parallel_requests", "bigint")
        .addColumn("tpm_limit", "bigint")
        .addColumn("rpm_limit", "bigint")
        .addColumn("model_max_budget", "text")
        .addColumn("budget_duration", "text")
        .addColumn("budget_started_at", "bigint")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text")
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("updated_by", "text")
        .execute();

      await db.schema
        .createTable("organizations")
        .addColumn("organization_id", "text", (c) => c.primaryKey())
        .addColumn("organization_alias", "text")
        .addColumn("budget_id", "text")
        .addColumn("metadata", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("models", "text", (c) => c.notNull().defaultTo("[]"))
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text")
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("updated_by", "text")
        .execute();

      await db.schema
        .createTable("organization_members")
        .addColumn("organization_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("user_role", "text")
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("budget_id", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("organization_members_pk", ["organization_id", "user_id"])
        .execute();

      await db.schema
        .createTable("teams")
        .addColumn("team_id", "text", (c) => c.primaryKey())
        .addColumn("team_alias", "text")
        .addColumn("organization_id", "text")
        .addColumn("metadata", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("max_budget", "double precision")
        .addColumn("soft_budget", "double precision")
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("models", "text", (c) => c.notNull().defaultTo("[]"))
        .addColumn("max_parallel_requests", "bigint")
        .addColumn("tpm_limit", "bigint")
        .addColumn("rpm_limit", "bigint")
        .addColumn("budget_duration", "text")
        .addColumn("budget_started_at", "bigint")
        .addColumn("blocked", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("model_max_budget", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text")
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("updated_by", "text")
        .execute();
      await db.schema.createIndex("teams_organization").on("teams").column("organization_id").execute();

      await db.schema
        .createTable("team_members")
        .addColumn("team_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("user_email", "text")
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("budget_id", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("team_members_pk", ["team_id", "user_id"])
        .execute();
      await db.schema.createIndex("team_members_user").on("team_members").column("user_id").execute();

      await db.schema
        .createTable("users")
        .addColumn("user_id", "text", (c) => c.primaryKey())
        .addColumn("user_alias", "text")
        .addColumn("user_email", "text")
        .addColumn("user_role", "text", (c) => c.notNull())
        .addColumn("organization_id", "text")
        .addColumn("max_budget", "double precision")
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("models", "text", (c) => c.notNull().defaultTo("[]"))
        .addColumn("metadata", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("max_parallel_requests", "bigint")
        .addColumn("tpm_limit", "bigint")
        .addColumn("rpm_limit", "bigint")
        .addColumn("budget_duration", "text")
        .addColumn("budget_started_at", "bigint")
        .addColumn("model_max_budget", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();

      await db.schema
        .createTable("virtual_keys")
        .addColumn("token", "text", (c) => c.primaryKey())
        .addColumn("key_id", "text", (c) => c.notNull())
        .addColumn("key_name", "text", (c) => c.notNull())
        .addColumn("key_alias", "text")
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("expires", "bigint")
        .addColumn("models", "text", (c) => c.notNull().defaultTo("[]"))
        .addColumn("aliases", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("config", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("permissions", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("metadata", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("allowed_cache_controls", "text", (c) => c.notNull().defaultTo("[]"))
        .addColumn("model_max_budget", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("user_id", "text")
        .addColumn("team_id", "text")
        .addColumn("organization_id", "text")
        .addColumn("budget_id", "text")
        .addColumn("blocked", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("max_parallel_requests", "bigint")
        .addColumn("tpm_limit", "bigint")
        .addColumn("rpm_limit", "bigint")
        .addColumn("max_budget", "double precision")
        .addColumn("soft_budget", "double precision")
        .addColumn("budget_duration", "text")
        .addColumn("budget_started_at", "bigint")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text")
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("updated_by", "text")
        .execute();
      // Aliases are unique (LiteLLM enforces it too); NULLs are distinct in a unique index on both databases.
      await db.schema.createIndex("virtual_keys_alias").on("virtual_keys").column("key_alias").unique().execute();
      await db.schema.createIndex("virtual_keys_key_id").on("virtual_keys").column("key_id").unique().execute();
      await db.schema.createIndex("virtual_keys_user").on("virtual_keys").columns(["user_id", "team_id"]).execute();
      await db.schema.createIndex("virtual_keys_team").on("virtual_keys").column("team_id").execute();

      await db.schema
        .createTable("end_users")
        .addColumn("user_id", "text", (c) => c.primaryKey())
        .addColumn("alias", "text")
        .addColumn("spend_nano", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("allowed_model_region", "text")
        .addColumn("default_model", "text")
        .addColumn("budget_id", "text")
        .addColumn("blocked", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();

      await db.schema
        .createTable("spend_logs")
        .addColumn("request_id", "text", (c) => c.primaryKey())
        .addColumn("call_type", "text", (c) => c.notNull())
        .addColumn("api_key", "text", (c) => c.notNull())
        .addColumn("key_id", "text")
        .addColumn("spend_nano", "bigint", (c) => c.notNull())
        .addColumn("total_tokens", "bigint", (c) => c.notNull())
        .addColumn("prompt_tokens", "bigint", (c) => c.notNull())
        .addColumn("completion_tokens", "bigint", (c) => c.notNull())
        .addColumn("start_time", "bigint", (c) => c.notNull())
        .addColumn("end_time", "bigint", (c) => c.notNull())
        .addColumn("model", "text", (c) => c.notNull())
        .addColumn("model_group", "text", (c) => c.notNull())
        .addColumn("api_base", "text", (c) => c.notNull())
        .addColumn("user_id", "text")
        .addColumn("team_id", "text")
        .addColumn("organization_id", "text")
        .addColumn("end_user", "text")
        .addColumn("key_alias", "text")
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("metadata", "text", (c) => c.notNull())
        .addColumn("request_tags", "text", (c) => c.notNull())
        .addColumn("requester_ip_address", "text")
        .execute();
      await db.schema.createIndex("spend_logs_start").on("spend_logs").columns(["start_time", "request_id"]).execute();
      await db.schema.createIndex("spend_logs_key").on("spend_logs").columns(["api_key", "start_time"]).execute();
      await db.schema.createIndex("spend_logs_team").on("spend_logs").columns(["team_id", "start_time"]).execute();
      await db.schema.createIndex("spend_logs_user").on("spend_logs").columns(["user_id", "start_time"]).execute();
      await db.schema.createIndex("spend_logs_end_user").on("spend_logs").columns(["end_user", "start_time"]).execute();

      await db.schema
        .createTable("spend_log_budgets")
        .addColumn("request_id", "text", (c) => c.notNull())
        .addColumn("budget", "text", (c) => c.notNull())
        .addColumn("period_end", "bigint")
        .addColumn("spend_nano", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("spend_log_budgets_pk", ["request_id", "budget"])
        .execute();
      await db.schema.createIndex("spend_log_budgets_budget").on("spend_log_budgets").column("budget").execute();
      await db.schema.createIndex("spend_log_budgets_end").on("spend_log_budgets").column("period_end").execute();
    },
  },
};

// 0002: one row per budget period instead of one per request and period (the ledger's hot write), the periods of
// each request kept on its spend-log row; the end-user index of spend_logs goes (reports filter by date first).
migrations["0002_budget_period_totals"] = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable("budget_period_spend")
      .addColumn("budget", "text", (c) => c.primaryKey())
      .addColumn("period_end", "bigint")
      .addColumn("spend_nano", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("budget_period_spend_end").on("budget_period_spend").column("period_end").execute();
    await sql`INSERT INTO budget_period_spend (budget, period_end, spend_nano)
      SELECT budget, MAX(period_end), SUM(spend_nano) FROM spend_log_budgets GROUP BY budget`.execute(db);
    await db.schema.alterTable("spend_logs").addColumn("budgets", "text").execute();
    await db.schema.dropTable("spend_log_budgets").execute();
    await db.schema.dropIndex("spend_logs_end_user").execute();
  },
};

class InlineProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

function migrator(db: Kysely<unknown>): Migrator {
  return new Migrator({
    db,
    provider: new InlineProvider(),
    migrationTableName: "tollgate_migrations",
    migrationLockTableName: "tollgate_migrations_lock",
  });
}

/** Applies the migrations up to `name` only (tests of later migrations on older databases). */
export async function migrateTo(db: Kysely<unknown>, name: string): Promise<void> {
  const { error } = await migrator(db).migrateTo(name);
  if (error) throw error;
}

/** Applies every pending migration; throws the first failure (the proxy then refuses to start). */
export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  const { error, results } = await migrator(db).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    throw new Error(
      `database migration${failed === undefined ? "s" : ` ${failed}`} failed: ${error instanceof Error ? error.message : error}`,
      {
        cause: error,
      },
    );
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
