/**
 * Plug point 3 (spend records): every finished LLM request (success, failure, denial, client disconnect) produces
 * exactly one {@link CallRecord}. Listeners are called synchronously at the end of the request and must be cheap
 * (queue the record; the management API batches them into its ledger). A listener that throws is logged and ignored.
 * `flush()` is awaited at shutdown, after the last request finished.
 */
import type { BudgetRef } from "@tollgate/budgets";
import type { Logger } from "pino";
import type { CallStatus } from "./call.js";

export interface CallRecord {
  /** The call id (`x-litellm-call-id`), also the ticket id. */
  requestId: string;
  keyHash: string | undefined;
  keyAlias: string | undefined;
  userId: string | undefined;
  teamId: string | undefined;
  orgId: string | undefined;
  endUserId: string | undefined;
  /** Public model name (model group). */
  model: string;
  deploymentId: string | undefined;
  apiBase: string | undefined;
  callType: "chat" | "completion" | "embedding";
  /** Tokens charged (0 when denied). */
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  /** Cost charged, exact nano-USD and as a USD number. */
  spendNano: number;
  spend: number;
  /** `success`, `failure` (upstream error or timeout), `denied` (limits, budgets), `client_closed`, `cutoff`. */
  status: CallStatus;
  /** HTTP status answered (499: the client went away). */
  httpStatus: number;
  stream: boolean;
  /** ms since epoch. */
  startTime: number;
  endTime: number;
  metadata: Record<string, unknown> | undefined;
  /**
   * The budgets the charge was counted against, from the ticket's `SpendRecord` (`scopes`, `periods`: the period of
   * each, `time`: the store clock of the charge). Absent when nothing was charged to a budget.
   */
  charged?: { scopes: BudgetRef[]; periods?: string[]; time: number };
}

export interface SpendListener {
  record(r: CallRecord): void;
  /** Called at shutdown after the last request: write out what is queued. */
  flush?(): Promise<void>;
}

export class SpendHooks {
  private listeners: SpendListener[] = [];

  constructor(private readonly log: Logger) {}

  add(l: SpendListener): () => void {
    this.listeners.push(l);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== l);
    };
  }

  get active(): boolean {
    return this.listeners.length > 0;
  }

  emit(r: CallRecord): void {
    for (const l of this.listeners) {
      try {
        l.record(r);
      } catch (err) {
        this.log.error({ err, requestId: r.requestId }, "spend listener failed");
      }
    }
  }

  async flush(): Promise<void> {
    for (const l of this.listeners) {
      try {
        await l.flush?.();
      } catch (err) {
        this.log.error({ err }, "spend listener flush failed");
      }
    }
  }
}
