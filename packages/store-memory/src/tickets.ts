/**
 * The memory store's tickets (contract 2): which admissions are open and which settles and releases are finished,
 * so that an adjustment naming a ticket applies exactly once however often it is sent.
 *
 * Bounded by time and by count: an open ticket lives as long as its lease (renewals extend it), a finished one for
 * the `keepMs` its adjustment asked; expired entries are dropped as new tickets arrive (a few per call, oldest
 * first). Beyond `maxFinished` finished tickets the oldest are forgotten early (a retry of one of those is then
 * taken as a ticket the store does not know: a settle applies, a release does not). Open tickets are never
 * forgotten before their lease expires: a release must find them.
 */
import type { TicketState } from "@tollgate/core";

/** One ticket. The engine keeps it as a handle (from the admission's answer) and hands it back when finishing. */
export interface Ticket {
  /** The store key of the ticket (prefix + id), and its id. */
  readonly key: string;
  readonly id: string;
  /** Open until finished; a finished ticket applies nothing again. */
  finished: boolean;
  /** When the ticket stops counting, ms. */
  expiry: number;
  /** Position in the table's queue (a stale queue slot has another). */
  seq: number;
  /** Set when the table no longer holds this entry under its key. */
  dropped: boolean;
}

/** Expired or surplus entries dropped per new ticket: more than one, so the table shrinks after a burst. */
const PRUNE_STEPS = 3;

export class TicketTable {
  private readonly byKey = new Map<string, Ticket>();
  /** Entries in the order they were queued (an entry is queued again when renewed or re-opened). */
  private queue: Ticket[] = [];
  private head = 0;
  /** Entries ever queued: the sequence number of the next one. */
  private pushed = 0;
  private finishedCount = 0;

  constructor(private readonly maxFinished: number) {}

  /** Number of entries held (open and finished, expired ones not yet dropped included). */
  get size(): number {
    return this.byKey.size;
  }

  /**
   * The live entry of `key` (the ticket `id` under the store's prefix), or of a handle the caller kept; undefined
   * when expired or unknown. A handle is checked by its id (the caller's own string: a pointer comparison).
   */
  find(key: string, id: string, handle: unknown, now: number): Ticket | undefined {
    const h = handle as Ticket | undefined;
    const t = h !== undefined && !h.dropped && h.id === id ? h : this.byKey.get(key);
    return t !== undefined && t.expiry > now ? t : undefined;
  }

  /** The entry of `key` whatever its expiry (one lookup for an admission: see {@link open}). */
  entry(key: string): Ticket | undefined {
    return this.byKey.get(key);
  }

  /** The state of `t` as {@link find} answered it. */
  static stateOf(t: Ticket | undefined): TicketState {
    if (t === undefined) return "unknown";
    return t.finished ? "finished" : "open";
  }

  /** Whether an admission must be refused: `t` (its {@link entry}) is finished and still remembered. */
  static isFinished(t: Ticket | undefined, now: number): boolean {
    return t?.finished === true && t.expiry > now;
  }

  /**
   * Records the ticket `id` (store key `key`) as open until `expiry` (an admission); `t` is its {@link entry} read
   * by the same call. Answers the entry (the engine's handle).
   */
  open(key: string, id: string, t: Ticket | undefined, now: number, expiry: number): Ticket {
    if (t?.dropped === true) t = this.byKey.get(key);
    if (t !== undefined) {
      if (t.finished) this.finishedCount--;
      t.finished = false;
      t.expiry = expiry;
      this.enqueue(t);
      this.prune(now);
      return t;
    }
    const fresh: Ticket = { key, id, finished: false, expiry, seq: 0, dropped: false };
    this.byKey.set(key, fresh);
    this.enqueue(fresh);
    this.prune(now);
    return fresh;
  }

  /** Records `key` as open until `expiry`, or finished until `expiry` (a ticket its engine kept so far). */
  record(key: string, id: string, finished: boolean, now: number, expiry: number): Ticket {
    if (!finished) return this.open(key, id, this.byKey.get(key), now, expiry);
    this.finish(key, id, this.find(key, id, undefined, now), now, expiry);
    return this.byKey.get(key)!;
  }

  /** Marks `key` finished until `expiry`; `found` is what {@link find} answered for it at this call. */
  finish(key: string, id: string, found: Ticket | undefined, now: number, expiry: number): void {
    if (found !== undefined) {
      if (!found.finished) {
        found.finished = true;
        this.finishedCount++;
      }
      // an open ticket finished within its lease keeps its place: it expires soon after the entries queued next
      found.expiry = expiry;
      if (this.finishedCount > this.maxFinished) this.prune(now);
      return;
    }
    this.prune(now);
    const stale = this.byKey.get(key); // an expired entry not dropped yet
    const t: Ticket = stale ?? { key, id, finished: true, expiry, seq: 0, dropped: false };
    if (stale === undefined) this.byKey.set(key, t);
    else if (!stale.finished) stale.finished = true;
    else this.finishedCount--; // counted again below
    t.expiry = expiry;
    this.finishedCount++;
    this.enqueue(t);
  }

  /** Extends a live open ticket (found by its handle or its key) to `expiry`; answers whether there was one. */
  renew(key: string, id: string, handle: unknown, now: number, expiry: number): boolean {
    const t = this.find(key, id, handle, now);
    if (t === undefined || t.finished) return false;
    t.expiry = expiry;
    this.enqueue(t); // renewed entries go to the back, so a long stream never holds up pruning
    return true;
  }

  clear(): void {
    for (const t of this.byKey.values()) t.dropped = true;
    this.byKey.clear();
    this.queue = [];
    this.head = 0;
    this.finishedCount = 0;
  }

  private enqueue(t: Ticket): void {
    t.seq = this.pushed++;
    this.queue.push(t);
  }

  /**
   * Drops up to {@link PRUNE_STEPS} entries from the front of the queue: expired ones, and finished ones while
   * there are more than `maxFinished`. Stops at the first entry still live (an open entry in the way of a count
   * overflow is queued again at the back).
   */
  private prune(now: number): void {
    for (let step = 0; step < PRUNE_STEPS && this.head < this.queue.length; step++) {
      const t = this.queue[this.head]!;
      const seq = this.pushed - this.queue.length + this.head;
      if (t.seq !== seq || t.dropped) {
        this.head++; // queued again later (renewed, re-opened): this slot is stale
        continue;
      }
      if (t.expiry <= now || (t.finished && this.finishedCount > this.maxFinished)) {
        this.head++;
        this.drop(t);
      } else if (!t.finished && this.finishedCount > this.maxFinished) {
        this.head++;
        this.enqueue(t);
      } else break;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private drop(t: Ticket): void {
    t.dropped = true;
    if (t.finished) this.finishedCount--;
    this.byKey.delete(t.key);
  }
}
