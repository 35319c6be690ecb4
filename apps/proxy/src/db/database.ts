import { mkdirSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { migrateToLatest } from "./migrations.js";
import type { Database } from "./schema.js";

/** Which engine a database URL names. */
export type DialectName = "sqlite" | "postgres";

/** An open, migrated database. */
export interface DatabaseHandle {
  db: Kysely<Database>;
  dialect: DialectName;
  /** The better-sqlite3 connection under `db` (SQLite only): the ledger writes through prepared statements. */
  sqlite?: SQLite.Database;
  /** The pg pool under `db` (PostgreSQL only): the ledger writes through it directly. */
  pool?: pg.Pool;
  /** The URL it was opened with, password masked (for logs). */
  displayUrl: string;
  /** Cheap round trip (`SELECT 1`): resolves when the database answers, rejects otherwise. */
  ping(): Promise<void>;
  /** Closes every connection. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** PostgreSQL pool size. @default 10 */
  poolSize?: number;
  /** How long a PostgreSQL connection attempt may take before the call fails (ms). @default 3000 */
  connectTimeoutMs?: number;
  /** Longest PostgreSQL query (ms); beyond it the call fails instead of hanging. @default 15000 */
  queryTimeoutMs?: number;
  /** Apply pending migrations. @default true */
  migrate?: boolean;
}

/** The default SQLite file: `tollgate.db` next to the config file (or in the working directory without one). */
export const DEFAULT_SQLITE_FILE = "tollgate.db";

/**
 * The database URL the proxy uses: `general_settings.database_url`, else the `DATABASE_URL` environment variable,
 * else the embedded SQLite file next to the config.
 */
export function resolveDatabaseUrl(
  configured: string | undefined | null,
  env: NodeJS.ProcessEnv = process.env,
  configDir: string = process.cwd(),
): string {
  const url = configured ?? env.DATABASE_URL;
  if (url !== undefined && url !== null && url !== "") return url;
  return resolve(configDir, DEFAULT_SQLITE_FILE);
}

/** `postgres://`/`postgresql://` → PostgreSQL; `sqlite:<path>`, `file:<path>`, a path or `:memory:` → SQLite. */
export function dialectOf(url: string): DialectName {
  return /^postgres(ql)?:\/\//i.test(url) ? "postgres" : "sqlite";
}

function sqlitePath(url: string, baseDir: string): string {
  let path = url;
  if (path.startsWith("sqlite://")) path = path.slice("sqlite://".length);
  else if (path.startsWith("sqlite:")) path = path.slice("sqlite:".length);
  else if (path.startsWith("file:")) path = path.slice("file:".length);
  if (path === ":memory:") return path;
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** The database as messages show it: the URL with its password masked (PostgreSQL), or the file's path (SQLite). */
export function displayDatabaseUrl(url: string, baseDir: string = process.cwd()): string {
  return dialectOf(url) === "postgres" ? maskUrl(url) : sqlitePath(url, baseDir);
}

function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "****";
    return u.toString();
  } catch {
    return url;
  }
}

/** int8 (bigint, count(*), sum(bigint) → numeric) come back from `pg` as strings; every value we store fits a double. */
const INT8_OID = 20;
const NUMERIC_OID = 1700;
function pgTypes() {
  return {
    getTypeParser(oid: number, format?: "text" | "binary") {
      if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => (v === null ? null : Number(v));
      // biome-ignore lint/suspicious/noExplicitAny: pg's overloads are not expressible here
      return (pg.types.getTypeParser as any)(oid, format);
    },
  };
}

/**
 * Opens the database named by `url` (see {@link resolveDatabaseUrl}) and applies the migrations.
 * SQLite runs in WAL mode with `synchronous=NORMAL` (a committed transaction survives a process crash; a power loss
 * may lose the last ones) and a 5 s busy timeout; the file and its directory are created when missing.
 */
export async function openDatabase(
  url: string,
  options: OpenDatabaseOptions = {},
  baseDir: string = process.cwd(),
): Promise<DatabaseHandle> {
  const dialect = dialectOf(url);
  let db: Kysely<Database>;
  let raw: SQLite.Database | undefined;
  let rawPool: pg.Pool | undefined;
  if (dialect === "postgres") {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 3_000,
      query_timeout: options.queryTimeoutMs ?? 15_000,
      idleTimeoutMillis: 30_000,
      types: pgTypes(),
    });
    // A client losing its connection (database restart) emits "error": on the pool for idle clients, on the client
    // itself while checked out. Without listeners Node would crash; the query in flight rejects on its own.
    pool.on("error", () => {});
    pool.on("connect", (client) => client.on("error", () => {}));
    rawPool = pool;
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    const path = sqlitePath(url, baseDir);
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const sqlite = new SQLite(path);
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("busy_timeout = 5000");
    raw = sqlite;
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  }
  let closed = false;
  const handle: DatabaseHandle = {
    db,
    dialect,
    ...(raw === undefined ? {} : { sqlite: raw }),
    ...(rawPool === undefined ? {} : { pool: rawPool }),
    displayUrl: dialect === "postgres" ? maskUrl(url) : sqlitePath(url, baseDir),
    async ping() {
      await sql`SELECT 1`.execute(db);
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
  if (options.migrate !== false) {
    try {
      await migrateToLatest(db as unknown as Kysely<unknown>);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }
  return handle;
}
