/** Shared pieces of the fleet tests: the fleet's config, outcome counting, ledger queries. */
import { createHash, randomBytes } from "node:crypto";
import { type Fleet, type FleetResponse, waitUntil } from "@tollgate/test-servers";
import { Redis } from "ioredis";
import { expect } from "vitest";

export const NANO = 1_000_000_000;

/**
 * The models every fleet test uses: `free` (no price), `paid` ($0.001 per output token: `max_tokens: 10` holds and
 * charges $0.01), both on `api`; `slow` (no price) on `slowApi`, for streams that hold their slot a while.
 */
export function fleetModels(api: string, slowApi = api): Record<string, unknown>[] {
  const free = { input_cost_per_token: 0, output_cost_per_token: 0 };
  return [
    { model_name: "free", litellm_params: { model: "openai/free", api_base: api, ...free } },
    {
      model_name: "paid",
      litellm_params: { model: "openai/paid", api_base: api, input_cost_per_token: 0, output_cost_per_token: 0.001 },
    },
    { model_name: "slow", litellm_params: { model: "openai/slow", api_base: slowApi, ...free } },
  ];
}

export const msg = (content = "hi") => [{ role: "user", content }];

/** Outcomes of a set of responses, by kind. */
export interface Outcomes {
  ok: number;
  limited: number;
  budget: number;
  /** Anything else: status and message (should be empty in exactness tests). */
  other: string[];
  /** Successes per instance. */
  okByInstance: number[];
}

export function outcomes(responses: FleetResponse[], instances = 3): Outcomes {
  const o: Outcomes = { ok: 0, limited: 0, budget: 0, other: [], okByInstance: Array(instances).fill(0) };
  for (const r of responses) {
    if (r.status === 200) {
      o.ok++;
      o.okByInstance[r.instance] = (o.okByInstance[r.instance] ?? 0) + 1;
    } else if (r.status === 429) o.limited++;
    else if (r.json?.error?.type === "budget_exceeded") o.budget++;
    else o.other.push(`${r.status} ${r.error?.message ?? r.text.slice(0, 200)}`);
  }
  return o;
}

/** Ledger rows (spend_logs) of a set of request ids, or of a key hash / team. */
export async function ledgerTotals(
  fleet: Fleet,
  where: { team?: string; keyHash?: string },
): Promise<{ rows: number; success: number; spendNano: number; tokens: number }> {
  const [col, val] = where.team !== undefined ? ["team_id", where.team] : ["api_key", where.keyHash];
  const rows = await fleet.sql<{ n: string; ok: string; spend: string | null; tokens: string | null }>(
    `SELECT count(*) AS n, count(*) FILTER (WHERE status = 'success') AS ok,
            sum(spend_nano) AS spend, sum(total_tokens) AS tokens
       FROM spend_logs WHERE ${col} = $1`,
    [val],
  );
  const r = rows[0]!;
  return { rows: Number(r.n), success: Number(r.ok), spendNano: Number(r.spend ?? 0), tokens: Number(r.tokens ?? 0) };
}

/** Which of `ids` the ledger holds, and how many times each (the primary key makes it at most once). */
export async function ledgerIds(fleet: Fleet, ids: readonly string[]): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 1000) {
    const part = ids.slice(i, i + 1000);
    const rows = await fleet.sql<{ request_id: string; n: string }>(
      "SELECT request_id, count(*) AS n FROM spend_logs WHERE request_id = ANY($1) GROUP BY request_id",
      [part],
    );
    for (const r of rows) found.set(r.request_id, Number(r.n));
  }
  return found;
}

/** `/tollgate/limits` of a key or team, from one instance (the store's live counters). */
export async function liveLimits(fleet: Fleet, query: string, instance = 0): Promise<any> {
  const r = await fleet.request(`/tollgate/limits?${query}`, undefined, { instance });
  if (r.status !== 200) throw new Error(`/tollgate/limits answered ${r.status}: ${r.text}`);
  return r.json;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Which master of a Redis Cluster serves a hash tag (`{team:t1}`): CLUSTER KEYSLOT + CLUSTER SLOTS on one node.
 * Returns a lookup function and a `close()`.
 */
export async function clusterMasterOf(
  nodes: Array<{ host: string; port: number }>,
): Promise<{ masterOf(tag: string): Promise<number>; close(): void }> {
  const r = new Redis({ host: nodes[0]!.host, port: nodes[0]!.port });
  const slots = (await r.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, ...unknown[]]]>;
  return {
    async masterOf(tag) {
      const slot = Number(await r.call("CLUSTER", "KEYSLOT", tag));
      const range = slots.find(([a, b]) => slot >= a && slot <= b);
      if (range === undefined) throw new Error(`no master serves slot ${slot}`);
      return Number(range[2][1]);
    },
    close: () => r.disconnect(),
  };
}

/** A fresh virtual-key secret and its hash (LiteLLM's `token`). */
export function newSecret(): { key: string; hash: string } {
  const key = `sk-fleet-${randomBytes(12).toString("hex")}`;
  return { key, hash: createHash("sha256").update(key).digest("hex") };
}

/** How many keys under `prefix` containing any of `ids` each master holds (direct connections, SCAN). */
export async function keysPerMaster(
  nodes: Array<{ host: string; port: number }>,
  prefix: string,
  ids: string[],
): Promise<number[]> {
  const out: number[] = [];
  for (const n of nodes) {
    const r = new Redis({ host: n.host, port: n.port });
    try {
      let count = 0;
      let cursor = "0";
      do {
        const [next, batch] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 10_000);
        cursor = next;
        count += batch.filter((k) => ids.some((id) => k.includes(id))).length;
      } while (cursor !== "0");
      out.push(count);
    } finally {
      r.disconnect();
    }
  }
  return out;
}

/** What the ledger holds for the successful responses of a run. */
export interface LedgerCheck {
  /** Successful responses (200) with a call id. */
  ok: number;
  /** Of those, rows in spend_logs (each id at most once: the primary key). */
  inLedger: number;
  /** Successful responses whose row is missing. */
  missing: FleetResponse[];
  /** Σ of `x-litellm-response-cost` of the successes, nano-USD. */
  chargedNano: number;
  /** Σ spend_nano of their rows. */
  ledgerNano: number;
  /** Rows of the non-200 responses that carry spend (should be none). */
  chargedFailures: number;
}

/** Compares the successes a client saw with the ledger's rows for them. */
export async function checkLedger(fleet: Fleet, responses: FleetResponse[]): Promise<LedgerCheck> {
  const ok = responses.filter((r) => r.status === 200 && r.callId !== undefined);
  const others = responses.filter((r) => r.status !== 200 && r.callId !== undefined).map((r) => r.callId!);
  const ids = ok.map((r) => r.callId!);
  const rows = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 1000) {
    const part = await fleet.sql<{ request_id: string; spend_nano: string }>(
      "SELECT request_id, spend_nano FROM spend_logs WHERE request_id = ANY($1)",
      [ids.slice(i, i + 1000)],
    );
    for (const r of part) rows.set(r.request_id, Number(r.spend_nano));
  }
  let chargedFailures = 0;
  for (let i = 0; i < others.length; i += 1000) {
    const part = await fleet.sql<{ n: string }>(
      "SELECT count(*) AS n FROM spend_logs WHERE request_id = ANY($1) AND spend_nano <> 0",
      [others.slice(i, i + 1000)],
    );
    chargedFailures += Number(part[0]!.n);
  }
  return {
    ok: ok.length,
    inLedger: rows.size,
    missing: ok.filter((r) => !rows.has(r.callId!)),
    chargedNano: ok.reduce((s, r) => s + Math.round((r.cost ?? 0) * NANO), 0),
    ledgerNano: [...rows.values()].reduce((s, v) => s + v, 0),
    chargedFailures,
  };
}

/** Waits until the ledger holds a row for every success (the instances flush about every second). */
export async function ledgerComplete(
  fleet: Fleet,
  responses: FleetResponse[],
  timeoutMs = 30_000,
): Promise<LedgerCheck> {
  return waitUntil(async () => {
    const c = await checkLedger(fleet, responses);
    if (c.missing.length > 0) throw new Error(`${c.missing.length} of ${c.ok} successes are not in the ledger yet`);
    return c;
  }, timeoutMs);
}

/** The spend of a key as the database's entity row says (updated with each ledger batch), nano-USD. */
export async function keySpendNano(fleet: Fleet, keyHash: string): Promise<number> {
  const rows = await fleet.sql<{ spend_nano: string }>("SELECT spend_nano FROM virtual_keys WHERE token = $1", [
    keyHash,
  ]);
  return Number(rows[0]?.spend_nano ?? Number.NaN);
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/**
 * Every success a client saw is in the ledger once, with the cost the client was told; no failure carries spend; the
 * key's spend (entities are updated in the ledger's transactions) equals the sum of its rows: nothing counted twice.
 */
export async function expectNothingLostOrDoubled(
  fleet: Fleet,
  keyHash: string,
  responses: FleetResponse[],
): Promise<LedgerCheck> {
  const c = await ledgerComplete(fleet, responses);
  expect(c.missing).toEqual([]);
  expect(c.inLedger).toBe(c.ok);
  expect(c.ledgerNano).toBe(c.chargedNano);
  expect(c.chargedFailures).toBe(0);
  await waitUntil(async () => {
    const rows = await fleet.sql<{ s: string }>("SELECT sum(spend_nano) AS s FROM spend_logs WHERE api_key = $1", [
      keyHash,
    ]);
    expect(await keySpendNano(fleet, keyHash)).toBe(Number(rows[0]!.s));
  });
  return c;
}

/** Responses by status (`conn:<code>` for connection-level failures). */
export function statusCounts(rs: FleetResponse[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rs) {
    const k =
      r.status === 0 ? `conn:${(r.error as NodeJS.ErrnoException)?.code ?? r.error?.message}` : String(r.status);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
