import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { createDatabase, startPostgres } from "../src/index.js";

async function one(url: string, sql: string, params: unknown[] = []): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe("test-servers: postgres", () => {
  it("the globalSetup provides a server; createDatabase gives each caller an empty database of its own", async () => {
    const admin = inject("postgres").url;
    expect(admin).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    const a = await createDatabase(admin);
    const b = await createDatabase(admin);
    expect(a).not.toBe(b);
    await one(a, "CREATE TABLE t (x int)");
    await one(a, "INSERT INTO t VALUES (1)");
    expect(await one(a, "SELECT x FROM t")).toEqual([{ x: 1 }]);
    // b is a different database: the table does not exist there.
    await expect(one(b, "SELECT x FROM t")).rejects.toThrow(/does not exist/);
  });

  it("kill9 stops answering; restart comes back on the same port with committed data", async () => {
    const server = await startPostgres();
    try {
      const url = await server.createDatabase("kept");
      await one(url, "CREATE TABLE t (x int)");
      await one(url, "INSERT INTO t VALUES (7)");
      // Committed = durable against a server crash (the WAL is written to the kernel at commit).
      await server.kill9();
      await expect(one(url, "SELECT 1")).rejects.toThrow();
      await server.restart();
      expect(await one(url, "SELECT x FROM t")).toEqual([{ x: 7 }]);
    } finally {
      await server.stop();
    }
  }, 90_000);

  it("a missing binary is a clear failure with install instructions, never a skip", async () => {
    await expect(startPostgres({ binDir: "/nonexistent" })).rejects.toThrow("apt-get install -y postgresql");
  });
});
