/** Shared pieces of the fleet tests: the fleet's config, outcome counting, ledger queries. */
import { createHash, randomBytes } from "node:crypto";
import type { Fleet, FleetResponse } from "@tollgate/test-servers";
import { Redis } from "ioredis";

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
