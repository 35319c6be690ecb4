/**
 * What a `kill -9` of the proxy costs the ledger: at most the rows not yet flushed (one flush interval, 1 s by
 * default). Steady load through the `openai` client, then SIGKILL; every row the database has is a request that
 * succeeded, and the missing ones all finished within the last flush interval. The figures are printed for
 * docs/benchmarks.md.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDatabase, type OpenAIUpstream, startOpenAIUpstream, startProxyProcess } from "@tollgate/test-servers";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openDatabase } from "../../src/db/database.js";
import { Repository } from "../../src/db/repository.js";

let upstream: OpenAIUpstream;
beforeAll(async () => {
  upstream = await startOpenAIUpstream({ defaults: { tokens: 5 } });
});
afterAll(async () => {
  await upstream?.close();
});

describe.each(["sqlite", "postgres"] as const)("kill -9 of the proxy (%s)", (dialect) => {
  it("loses at most the rows of the last flush interval, and nothing it had written", async () => {
    let dir: string | undefined;
    let url: string;
    if (dialect === "postgres") url = await createDatabase(inject("postgres").url);
    else {
      dir = mkdtempSync(join(tmpdir(), "tollgate-k9-"));
      url = join(dir, "tollgate.db");
    }
    const proxy = await startProxyProcess({
      config: `
model_list:
  - model_name: paid
    litellm_params: { model: openai/paid, api_base: ${upstream.apiBase}, input_cost_per_token: 0, output_cost_per_token: 0.000001 }
general_settings:
  master_key: sk-1234
  proxy_batch_write_at: 1
`,
      env: { DATABASE_URL: url },
    });
    try {
      const res = await fetch(`${proxy.url}/key/generate`, {
        method: "POST",
        headers: { authorization: "Bearer sk-1234", "content-type": "application/json" },
        body: "{}",
      });
      const key = ((await res.json()) as { key: string }).key;
      const openai = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: key, maxRetries: 0, timeout: 30_000 });
      const done: Array<{ id: string; at: number }> = [];
      let stop = false;
      const worker = async () => {
        while (!stop) {
          try {
            const r = await openai.chat.completions
              .create({ model: "paid", messages: [{ role: "user", content: "x" }], max_tokens: 5 })
              .withResponse();
            done.push({ id: r.response.headers.get("x-litellm-call-id")!, at: Date.now() });
          } catch {
            // the kill below ends the last ones
          }
        }
      };
      const workers = Array.from({ length: 16 }, worker);
      // Steady load for at least 2 s and 60 answered requests (a loaded machine is slow), at most 20 s.
      const t0 = Date.now();
      while (Date.now() - t0 < 20_000 && (Date.now() - t0 < 2_000 || done.length < 60)) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const killedAt = Date.now();
      await proxy.stop("SIGKILL");
      stop = true;
      await Promise.all(workers);

      const db = await openDatabase(url);
      const repo = new Repository(db.db, db.dialect, db.sqlite, db.pool);
      const rows = (await repo.spendLogs({})).rows;
      await db.close();
      const ids = new Set(rows.map((r) => r.request_id));
      const answered = done.filter((d) => d.at <= killedAt);
      const missing = answered.filter((d) => !ids.has(d.id));
      const oldestMissing = missing.length === 0 ? killedAt : Math.min(...missing.map((d) => d.at));
      console.log(
        `[kill -9, ${dialect}] ${answered.length} requests answered 200 in ${((killedAt - t0) / 1000).toFixed(1)} s; ${rows.length} rows in the ledger; ` +
          `${missing.length} missing, all answered in the last ${killedAt - oldestMissing} ms before the kill`,
      );
      expect(answered.length).toBeGreaterThanOrEqual(30);
      // Every row written is a request that was answered (no phantom rows), and every request answered more than one
      // flush interval (1 s, plus 2 s for a write on a loaded machine) before the kill is in the ledger.
      for (const r of rows) expect(done.some((d) => d.id === r.request_id)).toBe(true);
      expect(killedAt - oldestMissing).toBeLessThanOrEqual(3_000);
    } finally {
      await proxy.stop("SIGKILL");
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
