import { type Kysely, sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/db/database.js";
import { classifyDbError } from "../../src/db/errors.js";
import { migrateTo, migrateToLatest } from "../../src/db/migrations.js";
import { type Key, type LedgerRow, Repository, type SpendLog } from "../../src/db/repository.js";
import { DIALECTS, freshDatabase, freshDatabaseUrl } from "./helpers.js";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

function key(token: string, extra: Partial<Key> = {}): Key {
  return {
    token,
    key_id: token,
    key_name: `sk-...${token.slice(-4)}`,
    key_alias: null,
    spend_nano: 0,
    expires: null,
    models: [],
    aliases: {},
    config: {},
    permissions: {},
    metadata: {},
    allowed_cache_controls: [],
    model_max_budget: {},
    user_id: null,
    team_id: null,
    organization_id: null,
    budget_id: null,
    blocked: false,
    max_parallel_requests: null,
    tpm_limit: null,
    rpm_limit: null,
    max_budget: null,
    soft_budget: null,
    budget_duration: null,
    budget_started_at: null,
    created_at: NOW,
    created_by: null,
    updated_at: NOW,
    updated_by: null,
    ...extra,
  };
}

function log(id: string, extra: Partial<SpendLog> = {}): SpendLog {
  return {
    request_id: id,
    call_type: "acompletion",
    api_key: "hash-a",
    key_id: "hash-a",
    spend_nano: 1_000,
    total_tokens: 30,
    prompt_tokens: 10,
    completion_tokens: 20,
    start_time: NOW,
    end_time: NOW + 5,
    model: "gpt-4o",
    model_group: "gpt-4o",
    api_base: "http://upstream",
    user_id: "u1",
    team_id: "t1",
    organization_id: null,
    end_user: null,
    key_alias: null,
    status: "success",
    metadata: {},
    request_tags: [],
    requester_ip_address: null,
    ...extra,
  };
}

describe.each(DIALECTS)("repository on %s", (dialect) => {
  let h: Awaited<ReturnType<typeof freshDatabase>>;
  let repo: Repository;
  beforeAll(async () => {
    h = await freshDatabase(dialect);
    repo = new Repository(h.db, h.dialect, h.sqlite, h.pool);
  });
  afterAll(async () => {
    await h.cleanup();
  });

  it("migrations are applied once; opening again applies nothing and keeps the data", async () => {
    const { url, cleanup } = await freshDatabaseUrl(dialect);
    const a = await openDatabase(url);
    await new Repository(a.db, a.dialect).insertKey(key("k-reopen"));
    await a.close();
    const b = await openDatabase(url);
    expect(await new Repository(b.db, b.dialect).getKey("k-reopen")).toMatchObject({ token: "k-reopen" });
    await b.close();
    cleanup();
  });

  it("migration 0002 carries the per-request period rows of 0001 over into per-period totals", async () => {
    const { url, cleanup } = await freshDatabaseUrl(dialect);
    const old = await openDatabase(url, { migrate: false });
    const db = old.db as unknown as Kysely<unknown>;
    await migrateTo(db, "0001_entities_and_ledger");
    await sql`INSERT INTO spend_log_budgets (request_id, budget, period_end, spend_nano)
      VALUES ('a', 'w1', 100, 5), ('b', 'w1', 100, 7), ('b', 'w2', NULL, 7)`.execute(db);
    await migrateToLatest(db);
    const repo2 = new Repository(old.db, old.dialect, old.sqlite, old.pool);
    expect(Object.fromEntries(await repo2.openPeriodTotals(50))).toEqual({ w1: 12, w2: 7 });
    expect(Object.fromEntries(await repo2.openPeriodTotals(100))).toEqual({ w2: 7 });
    await old.close();
    cleanup();
  });

  it("keys round-trip with JSON columns and flags; SQL metacharacters are stored verbatim", async () => {
    const nasty = `x'); DROP TABLE virtual_keys; -- "quoted" \\ %_ ünïcödé`;
    await repo.insertKey(
      key("k1", {
        key_alias: nasty,
        models: ["gpt-4o", nasty],
        metadata: { model_rpm_limit: { "gpt-4o": 5 }, note: nasty },
        blocked: true,
        max_budget: 0.000000000001,
        tpm_limit: 2 ** 40,
      }),
    );
    const got = await repo.getKey("k1");
    expect(got).toMatchObject({
      key_alias: nasty,
      models: ["gpt-4o", nasty],
      metadata: { model_rpm_limit: { "gpt-4o": 5 }, note: nasty },
      blocked: true,
      max_budget: 1e-12,
      tpm_limit: 2 ** 40,
      spend_nano: 0,
    });
    expect(await repo.getKeysByAlias([nasty])).toHaveLength(1);
    expect(await repo.getKey("k1' OR '1'='1")).toBeUndefined();
  });

  it("a duplicate key alias or primary key is a conflict and writes nothing", async () => {
    await repo.insertKey(key("k-dup-1", { key_alias: "dup" }));
    const e1 = await repo.insertKey(key("k-dup-2", { key_alias: "dup" })).catch((e) => e);
    expect(classifyDbError(e1)).toBe("conflict");
    const e2 = await repo.insertKey(key("k-dup-1")).catch((e) => e);
    expect(classifyDbError(e2)).toBe("conflict");
    expect(await repo.getKey("k-dup-2")).toBeUndefined();
  });

  it("listKeys pages, counts and limits visibility to a user's own and team keys", async () => {
    for (let i = 0; i < 5; i++) {
      await repo.insertKey(
        key(`k-list-${i}`, {
          user_id: i < 3 ? "lister" : "other",
          team_id: i === 4 ? "tl" : null,
          created_at: NOW + i,
        }),
      );
    }
    const p1 = await repo.listKeys({ page: 1, size: 2, user_id: "lister" });
    expect(p1.total).toBe(3);
    expect(p1.rows.map((k) => k.token)).toEqual(["k-list-0", "k-list-1"]);
    const p2 = await repo.listKeys({ page: 2, size: 2, user_id: "lister" });
    expect(p2.rows.map((k) => k.token)).toEqual(["k-list-2"]);
    const visible = await repo.listKeys({ page: 1, size: 100, visibleTo: { user_id: "lister", team_ids: ["tl"] } });
    expect(visible.rows.map((k) => k.token).sort()).toEqual(["k-list-0", "k-list-1", "k-list-2", "k-list-4"]);
    const none = await repo.listKeys({ page: 1, size: 100, visibleTo: { user_id: null, team_ids: [] } });
    expect(none.total).toBe(0);
  });

  it("writeLedger writes each request once, adds spend once per entity and records budget periods", async () => {
    await repo.insertKey(key("hash-a"));
    const now = NOW;
    await repo.insertTeam({
      team_id: "t1",
      team_alias: null,
      organization_id: null,
      metadata: {},
      max_budget: null,
      soft_budget: null,
      spend_nano: 0,
      models: [],
      max_parallel_requests: null,
      tpm_limit: null,
      rpm_limit: null,
      budget_duration: null,
      budget_started_at: null,
      blocked: false,
      model_max_budget: {},
      created_at: now,
      created_by: null,
      updated_at: now,
      updated_by: null,
    });
    await repo.insertTeamMember({
      team_id: "t1",
      user_id: "u1",
      role: "user",
      user_email: null,
      spend_nano: 0,
      budget_id: null,
      created_at: now,
    });
    const rows: LedgerRow[] = [
      {
        log: log("r1", { end_user: "cust-1" }),
        budgets: [{ budget: "{budget:key:hash-a}:d:1", period_end: now + 1000, spend_nano: 1_000 }],
      },
      {
        log: log("r2"),
        budgets: [
          { budget: "{budget:key:hash-a}:d:1", period_end: now + 1000, spend_nano: 1_000 },
          { budget: "{budget:team:t1}:n", period_end: null, spend_nano: 1_000 },
        ],
      },
      { log: log("r3", { status: "failure", spend_nano: 0 }), budgets: [] },
      { log: log("r3", { status: "failure", spend_nano: 0 }), budgets: [] },
    ];
    expect(await repo.writeLedger(rows, now)).toBe(3);
    // The same batch again (a retry after an ambiguous commit): nothing new.
    expect(await repo.writeLedger(rows, now)).toBe(0);
    expect((await repo.getKey("hash-a"))?.spend_nano).toBe(2_000);
    expect((await repo.getTeam("t1"))?.spend_nano).toBe(2_000);
    expect((await repo.getTeamMember("t1", "u1"))?.spend_nano).toBe(2_000);
    expect(await repo.getEndUser("cust-1")).toMatchObject({ spend_nano: 1_000, blocked: false });
    const open = await repo.openPeriodTotals(now);
    expect(open.get("{budget:key:hash-a}:d:1")).toBe(2_000);
    expect(open.get("{budget:team:t1}:n")).toBe(1_000);
    // After the period ended only the never-ending budget is open.
    const later = await repo.openPeriodTotals(now + 1000);
    expect(later.has("{budget:key:hash-a}:d:1")).toBe(false);
    expect(later.get("{budget:team:t1}:n")).toBe(1_000);
    const logs = await repo.spendLogs({ api_key: "hash-a" });
    expect(logs.total).toBe(3);
    expect(logs.rows.find((r) => r.request_id === "r3")).toMatchObject({ status: "failure", spend_nano: 0 });
    expect(await repo.spendTotal({ team_id: "t1" })).toBe(2_000);
  });

  it("spendReport groups by UTC day and by the chosen dimension", async () => {
    const day1 = Date.UTC(2026, 1, 1, 23, 59, 59);
    const day2 = Date.UTC(2026, 1, 2, 0, 0, 1);
    await repo.writeLedger(
      [
        { log: log("rep-1", { start_time: day1, team_id: "ta", api_key: "kr", spend_nano: 5 }), budgets: [] },
        { log: log("rep-2", { start_time: day1, team_id: "tb", api_key: "kr", spend_nano: 7 }), budgets: [] },
        { log: log("rep-3", { start_time: day2, team_id: "ta", api_key: "kr", spend_nano: 11 }), budgets: [] },
      ],
      day2,
    );
    const byTeam = await repo.spendReport({ api_key: "kr" }, "team");
    expect(byTeam.map((r) => [r.day, r.group, r.spend_nano, r.requests])).toEqual([
      ["2026-02-01", "ta", 5, 1],
      ["2026-02-01", "tb", 7, 1],
      ["2026-02-02", "ta", 11, 1],
    ]);
    const byKey = await repo.spendReport({ api_key: "kr", from: day2 }, "api_key");
    expect(byKey).toEqual([
      {
        day: "2026-02-02",
        group: "kr",
        spend_nano: 11,
        requests: 1,
        prompt_tokens: 10,
        completion_tokens: 20,
        total_tokens: 30,
      },
    ]);
  });
});

describe("database errors", () => {
  it("an unreachable PostgreSQL is 'unavailable' (503), quickly", async () => {
    const t0 = Date.now();
    const err = await openDatabase("postgres://postgres@127.0.0.1:1/none", { connectTimeoutMs: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(classifyDbError((err as Error).cause ?? err)).toBe("unavailable");
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
