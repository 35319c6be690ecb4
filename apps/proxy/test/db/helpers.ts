import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDatabase } from "@tollgate/test-servers";
import { inject } from "vitest";
import { type DatabaseHandle, openDatabase } from "../../src/db/database.js";

/** The two engines every database test runs on. */
export const DIALECTS = ["sqlite", "postgres"] as const;
export type TestDialect = (typeof DIALECTS)[number];

/** A fresh, migrated database: a temporary SQLite file, or a new database on the test PostgreSQL server. */
export async function freshDatabaseUrl(dialect: TestDialect): Promise<{ url: string; cleanup: () => void }> {
  if (dialect === "postgres") {
    return { url: await createDatabase(inject("postgres").url), cleanup: () => {} };
  }
  const dir = mkdtempSync(join(tmpdir(), "tollgate-sqlite-"));
  return { url: join(dir, "tollgate.db"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function freshDatabase(dialect: TestDialect): Promise<DatabaseHandle & { cleanup(): Promise<void> }> {
  const { url, cleanup } = await freshDatabaseUrl(dialect);
  const handle = await openDatabase(url);
  return Object.assign(handle, {
    async cleanup() {
      await handle.close();
      cleanup();
    },
  });
}
