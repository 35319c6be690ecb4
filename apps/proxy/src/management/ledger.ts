import {
  type BudgetRef,
  type BudgetSpec,
  baseKeyOf,
  type CompiledBudget,
  compileBudget,
  type HydrateTotal,
  litellmBudgets,
  modelMatches,
} from "@tollgate/budgets";
import type { Budget, JsonObject, LedgerRow, Repository } from "../db/repository.js";
import type { PeriodSettings } from "./context.js";
import {
  endUserBudgetFields,
  type IdentitySettings,
  keyBudgetFields,
  memberBudgetFields,
  organizationBudgetFields,
  type RequestIdentity,
  teamBudgetFields,
  userBudgetFields,
} from "./identity.js";

/** One finished request (or one refused by a limit or budget), as the proxy reports it. */
export interface FinishedRequest {
  /** The request id (= the gate's ticket id and `x-litellm-call-id`): one ledger row per id, ever. */
  requestId: string;
  /** Who it was billed to; null for requests without an identity (nothing is logged for them). */
  identity: Pick<RequestIdentity, "attribution"> | null;
  /** LiteLLM's call type: `acompletion`, `atext_completion`, `aembedding`. */
  callType: string;
  /** The public model name the client asked for (`model_group`). */
  modelGroup: string;
  /** The deployment's model (`litellm_params.model`), when one was called. */
  model?: string;
  apiBase?: string;
  /** `success`, or `failure` for upstream errors and requests the proxy refused (spend 0). */
  status: "success" | "failure";
  promptTokens?: number;
  completionTokens?: number;
  totalTokens?: number;
  /** Exact cost charged (nano-USD); 0 for failures without usage and for refusals. */
  costNano: number;
  startTime: number;
  endTime: number;
  /**
   * The budgets the request was admitted with (the identity's plus the proxy's global one). With `charged`, only the
   * budgets whose refs are listed there count; without it, every budget of the request's model.
   */
  budgets?: readonly BudgetSpec[];
  /** The gate's `SpendRecord.scopes`: the budgets the charge was counted against. */
  charged?: readonly BudgetRef[];
  /**
   * The gate's `SpendRecord.periods` (same order as `charged`): the period of each budget charged. With both, the
   * ledger names exactly the windows the store counted, whatever the budgets' settings are by now.
   */
  periods?: readonly string[];
  /** The gate's `SpendRecord.time` (the store clock of the charge): picks each budget's period. Default `endTime`. */
  chargedAt?: number;
  requesterIp?: string | null;
  tags?: string[];
  metadata?: JsonObject;
}

/** Options of the {@link LedgerWriter}. */
export interface LedgerOptions {
  /** Longest time a finished request waits before its row is written (ms). @default 1000 */
  flushIntervalMs?: number;
  /** Rows per write; a full batch is written at once. @default 500 */
  batchSize?: number;
  /**
   * Rows kept while the database is unreachable; beyond this the oldest are dropped (counted in `dropped`, reported
   * through `onError`). At ~1 KB per row the default holds about 200 MB. @default 200000
   */
  maxQueue?: number;
  periods?: PeriodSettings;
  now?: () => number;
  onError?: (err: unknown, info: { pending: number; dropped: number }) => void;
}

/** The end (ms) a `Period.id` names (`<schedule>:<end>`), null for `never`. */
export function periodEnd(id: string): number | null {
  const n = Number(id.slice(id.lastIndexOf(":") + 1));
  return id.lastIndexOf(":") === -1 || !Number.isSafeInteger(n) ? null : n;
}

const refKey = (r: BudgetRef) => `${r.scope}\u0000${r.id}\u0000${r.teamId ?? ""}\u0000${r.model ?? ""}`;

/**
 * The spend ledger: one `spend_logs` row per finished request, written in batches off the request path (at most
 * every `flushIntervalMs`, or at once when `batchSize` rows wait), each row naming the budget periods it was
 * charged to, and the entities' `spend` increased in the same transaction. A write that fails (database down) is
 * retried on the next tick with nothing lost; `close()` (SIGTERM) writes everything still queued.
 * Idempotent by request id: a row already written is never written or counted twice.
 */
export class LedgerWriter {
  private queue: LedgerRow[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private running: Promise<void> | undefined;
  private readonly compiled = new Map<string, CompiledBudget>();
  private readonly opts: Required<Omit<LedgerOptions, "onError" | "periods">> & Pick<LedgerOptions, "onError">;
  private readonly periods: Required<PeriodSettings>;
  /** Rows written since start. */
  written = 0;
  /** Rows dropped because the queue overflowed while the database was down. */
  dropped = 0;
  /** Failed writes (each retried). */
  failures = 0;
  private closed = false;

  constructor(
    private readonly repo: Repository,
    options: LedgerOptions = {},
  ) {
    this.opts = {
      flushIntervalMs: options.flushIntervalMs ?? 1_000,
      batchSize: options.batchSize ?? 500,
      maxQueue: options.maxQueue ?? 200_000,
      now: options.now ?? Date.now,
      onError: options.onError,
    };
    this.periods = { timeZone: "UTC", reset: "calendar", keyPrefix: "budget", ...options.periods };
    this.timer = setInterval(() => void this.flush(), this.opts.flushIntervalMs);
    this.timer.unref?.();
  }

  /** Rows waiting to be written. */
  get pending(): number {
    return this.queue.length;
  }

  private compile(spec: BudgetSpec): CompiledBudget {
    const k = JSON.stringify(spec);
    let b = this.compiled.get(k);
    if (b === undefined) {
      b = compileBudget(spec, this.periods);
      if (this.compiled.size > 10_000) this.compiled.clear();
      this.compiled.set(k, b);
    }
    return b;
  }

  /** The ledger row of a finished request (pure; exposed for tests). */
  toRow(r: FinishedRequest): LedgerRow {
    const a = r.identity?.attribution;
    const budgets: LedgerRow["budgets"] = [];
    if (r.costNano > 0 && r.charged !== undefined && r.periods !== undefined && r.periods.length === r.charged.length) {
      const seen = new Set<string>();
      r.charged.forEach((ref, i) => {
        const period = r.periods![i]!;
        const key = `${baseKeyOf(ref, this.periods.keyPrefix)}:${period}`;
        if (seen.has(key)) return;
        seen.add(key);
        budgets.push({ budget: key, period_end: periodEnd(period), spend_nano: r.costNano });
      });
    } else if (r.costNano > 0 && r.budgets !== undefined) {
      const charged = r.charged === undefined ? undefined : new Set(r.charged.map(refKey));
      const at = r.chargedAt ?? r.endTime;
      const seen = new Set<string>();
      for (const spec of r.budgets) {
        if (
          charged !== undefined
            ? !charged.has(refKey(spec))
            : spec.model !== undefined && !modelMatches(spec.model, r.modelGroup)
        ) {
          continue;
        }
        const b = this.compile(spec);
        const p = b.schedule.periodAt(at);
        const key = `${b.base}:${p.id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        budgets.push({ budget: key, period_end: Number.isFinite(p.end) ? p.end : null, spend_nano: r.costNano });
      }
    }
    return {
      log: {
        request_id: r.requestId,
        call_type: r.callType,
        api_key: a?.api_key ?? "",
        key_id: a?.key_id ?? null,
        spend_nano: r.costNano,
        total_tokens: r.totalTokens ?? (r.promptTokens ?? 0) + (r.completionTokens ?? 0),
        prompt_tokens: r.promptTokens ?? 0,
        completion_tokens: r.completionTokens ?? 0,
        start_time: r.startTime,
        end_time: r.endTime,
        model: r.model ?? r.modelGroup,
        model_group: r.modelGroup,
        api_base: r.apiBase ?? "",
        user_id: a?.user_id ?? null,
        team_id: a?.team_id ?? null,
        organization_id: a?.organization_id ?? null,
        end_user: a?.end_user ?? null,
        key_alias: a?.key_alias ?? null,
        status: r.status,
        metadata: r.metadata ?? {},
        request_tags: r.tags ?? [],
        requester_ip_address: r.requesterIp ?? null,
        budgets: null,
      },
      budgets,
    };
  }

  /** Queues a finished request (synchronous, no I/O). */
  record(r: FinishedRequest): void {
    this.push(this.toRow(r));
  }

  /** Queues a ledger row built by the caller (the proxy's spend records: no intermediate object). */
  push(row: LedgerRow): void {
    if (this.closed) throw new Error("ledger closed");
    this.queue.push(row);
    if (this.queue.length > this.opts.maxQueue) {
      const n = this.queue.length - this.opts.maxQueue;
      this.queue.splice(0, n);
      this.dropped += n;
      this.opts.onError?.(new Error(`ledger queue full: dropped the ${n} oldest rows`), {
        pending: this.queue.length,
        dropped: this.dropped,
      });
    }
    if (this.queue.length >= this.opts.batchSize) void this.flush();
  }

  /** Writes every queued row (batch by batch). Resolves when done or when a write failed (rows kept for retry). */
  flush(): Promise<void> {
    if (this.running !== undefined) return this.running;
    this.running = this.drain().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.opts.batchSize);
      try {
        await this.repo.writeLedger(batch, this.opts.now());
      } catch (err) {
        this.failures++;
        this.opts.onError?.(err, { pending: this.queue.length, dropped: this.dropped });
        return;
      }
      this.queue.splice(0, batch.length);
      this.written += batch.length;
    }
  }

  /**
   * Stops the timer and writes everything queued (SIGTERM). With the database down it retries for `graceMs`, then
   * gives up and reports how many rows were not written.
   */
  async close(graceMs = 10_000): Promise<{ unwritten: number }> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    const deadline = Date.now() + graceMs;
    for (;;) {
      await this.flush();
      if (this.queue.length === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(0, deadline - Date.now()))));
    }
    return { unwritten: this.queue.length };
  }
}

/**
 * The budget counters to restore after a restart on the memory store (`budgets.hydrate({ totals })`): every budget
 * the database defines (keys, users, teams, members, end users, organizations, their per-model budgets, plus
 * `extra` such as the proxy's global budget), each with the ledger's total of its current period. A record counts in
 * exactly the periods it was charged to, so a daily and a monthly budget of one key each get their own sum.
 */
export async function hydrationTotals(
  repo: Repository,
  settings: IdentitySettings,
  periods: PeriodSettings,
  now: number,
  extra: readonly BudgetSpec[] = [],
): Promise<HydrateTotal[]> {
  const open = await repo.openPeriodTotals(now);
  if (open.size === 0) return [];
  const p: Required<PeriodSettings> = { timeZone: "UTC", reset: "calendar", keyPrefix: "budget", ...periods };
  const budgets = new Map<string, Budget>((await repo.listBudgets()).map((b) => [b.budget_id, b]));
  const budget = (id: string | null | undefined) => (id == null ? null : (budgets.get(id) ?? null));
  const specs: BudgetSpec[] = [...extra];
  for (const k of await repo.allKeys()) specs.push(...litellmBudgets({ key: keyBudgetFields(k, budget(k.budget_id)) }));
  for (const u of await repo.allUsers()) specs.push(...litellmBudgets({ user: userBudgetFields(u, settings) }));
  const teams = await repo.listTeams();
  const teamById = new Map(teams.map((t) => [t.team_id, t]));
  for (const t of teams) specs.push(...litellmBudgets({ team: teamBudgetFields(t) }));
  for (const m of await repo.allTeamMembers()) {
    const team = teamById.get(m.team_id);
    const def = typeof team?.metadata.team_member_budget_id === "string" ? team.metadata.team_member_budget_id : null;
    const mb = budget(m.budget_id ?? def);
    if (mb !== null) specs.push(...litellmBudgets({ team_member: memberBudgetFields(m.team_id, m.user_id, mb) }));
  }
  for (const e of await repo.listEndUsers()) {
    specs.push(...litellmBudgets({ end_user: endUserBudgetFields(e.user_id, budget(e.budget_id), settings) }));
  }
  for (const o of await repo.listOrganizations()) {
    const ob = budget(o.budget_id);
    if (ob !== null) specs.push(...litellmBudgets({ organization: organizationBudgetFields(o, ob) }));
  }
  const out: HydrateTotal[] = [];
  const seen = new Set<string>();
  for (const spec of specs) {
    const b = compileBudget(spec, p);
    const key = `${b.base}:${b.schedule.periodAt(now).id}`;
    const total = open.get(key);
    if (total === undefined || seen.has(key)) continue;
    seen.add(key);
    out.push({ budget: spec, spendNano: total });
  }
  return out;
}
