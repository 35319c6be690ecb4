/**
 * Calls that must reach the backend eventually, retried until they do: compensations of admissions whose answer was
 * lost (a timeout) and ticketed settles or releases answered by a failure policy while the backend was down. Every
 * entry is idempotent by its ticket, so sending it more than once is harmless: a retry that finds its ticket
 * finished applies nothing. An entry is given up at its deadline, which the caller sets before the ticket's finished
 * mark could have expired (past it a retry could apply twice).
 */
import { TollgateError } from "@tollgate/core";

/** Why an entry left the queue without having been applied. */
export type ReplayDropReason = "expired" | "overflow" | "rejected" | "closed";

/** Options of {@link ReplayQueue}. */
export interface ReplayQueueOptions {
  /** Pause between passes over the waiting entries while any wait, ms. */
  retryIntervalMs: number;
  /** Local clock for deadlines. */
  now: () => number;
  /** Entries kept at most; the oldest is dropped beyond. @default 100_000 */
  maxEntries?: number;
  /** How many entries one pass sends at a time (after a first one got through). @default 16 */
  concurrency?: number;
  /** Called for every entry dropped without being applied. */
  onDrop?: (label: string, reason: ReplayDropReason, error?: unknown) => void;
}

interface Entry {
  label: string;
  run: () => Promise<unknown>;
  deadline: number;
  busy: boolean;
}

const isUnavailable = (err: unknown): boolean => err instanceof TollgateError && err.code === "STORE_UNAVAILABLE";

export class ReplayQueue {
  private readonly entries = new Set<Entry>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private passing: Promise<void> | undefined;
  private closed = false;
  private readonly maxEntries: number;
  private readonly concurrency: number;

  constructor(private readonly o: ReplayQueueOptions) {
    this.maxEntries = o.maxEntries ?? 100_000;
    this.concurrency = o.concurrency ?? 16;
  }

  /** Entries waiting (or being sent). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Queues `run`, and sends it at once unless `now` is false (then the next pass does; a compensation goes at once so
   * that it follows its admission on the same connection). It stays queued while it fails with `STORE_UNAVAILABLE`;
   * any other error drops it (`rejected`).
   */
  add(label: string, run: () => Promise<unknown>, deadline: number, now = true): void {
    if (this.closed) {
      this.o.onDrop?.(label, "closed");
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.values().next().value as Entry;
      this.entries.delete(oldest);
      this.o.onDrop?.(oldest.label, "overflow");
    }
    const entry: Entry = { label, run, deadline, busy: false };
    this.entries.add(entry);
    if (!now) {
      this.schedule();
      return;
    }
    void this.attempt(entry).then((ok) => {
      if (!ok) this.schedule();
    });
  }

  /** Sends one entry; true when it left the queue (applied or dropped). */
  private async attempt(e: Entry): Promise<boolean> {
    if (e.busy) return false;
    if (this.o.now() > e.deadline) {
      this.entries.delete(e);
      this.o.onDrop?.(e.label, "expired");
      return true;
    }
    e.busy = true;
    try {
      await e.run();
      this.entries.delete(e);
      return true;
    } catch (err) {
      if (isUnavailable(err)) return false;
      this.entries.delete(e);
      this.o.onDrop?.(e.label, "rejected", err);
      return true;
    } finally {
      e.busy = false;
    }
  }

  private schedule(): void {
    if (this.closed || this.timer !== undefined || this.entries.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.pass().then(() => this.schedule());
    }, this.o.retryIntervalMs);
    // Waiting replays never keep a process alive; `flush()` before exiting sends them.
    (this.timer as { unref?: () => void }).unref?.();
  }

  /**
   * One pass over the waiting entries: the first is sent alone (a probe); when it gets through, the others follow,
   * `concurrency` at a time. A pass stops at the first entry that still cannot reach the backend.
   */
  pass(): Promise<void> {
    this.passing ??= this.runPass().finally(() => {
      this.passing = undefined;
    });
    return this.passing;
  }

  private async runPass(): Promise<void> {
    const waiting = [...this.entries].filter((e) => !e.busy);
    if (waiting.length === 0 || !(await this.attempt(waiting[0]!))) return;
    for (let i = 1; i < waiting.length; i += this.concurrency) {
      const done = await Promise.all(waiting.slice(i, i + this.concurrency).map((e) => this.attempt(e)));
      if (done.some((left) => !left)) return;
    }
  }

  /** Passes until nothing waits or `timeoutMs` passed; answers how many entries still wait. */
  async flush(timeoutMs: number): Promise<number> {
    const end = this.o.now() + timeoutMs;
    while (this.entries.size > 0 && this.o.now() < end) {
      await this.pass();
      if (this.entries.size > 0) await new Promise((r) => setTimeout(r, Math.min(50, this.o.retryIntervalMs)));
    }
    return this.entries.size;
  }

  /** Stops retrying and drops what waits (`closed`). */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    for (const e of this.entries) this.o.onDrop?.(e.label, "closed");
    this.entries.clear();
  }
}
