import { type BudgetSpec, createBudgets, type PriceTable, type SpendRecord } from "@tollgate/budgets";
import { type CounterStore, createLimiter, type Descriptor, type LeaseRef, type Outcome } from "@tollgate/core";
import type { FlatBatch, FlatResult } from "@tollgate/core/internal";
import { createMemoryStore, type MemoryStore } from "@tollgate/store-memory";
import { createGate, type Gate, type GateAdmission, type GateOptions } from "../src/index.js";

/** 1000 nano-USD per input token, 2000 per output token: 2000 input + max_tokens 4000 hold exactly $0.01. */
export const PRICES: PriceTable = {
  "test-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002", max_output_tokens: 8000 },
};
export const CENT = 10_000_000;
export const T0 = Date.UTC(2027, 5, 15, 12, 0, 0);

/** Every call a store received, counted by kind (flat and object forms together). */
export interface Calls {
  admit: number;
  adjust: number;
  renew: number;
  read: number;
}

/**
 * A store that counts the calls it receives and passes them to a memory store: with `flat`, it declares the flat
 * capability (the in-process path), else it is seen through the contract's async methods only (every other store).
 */
export function countingStore(inner: MemoryStore, flat: boolean): { store: CounterStore; calls: Calls } {
  const calls: Calls = { admit: 0, adjust: 0, renew: 0, read: 0 };
  const store: CounterStore = {
    contractVersion: inner.contractVersion,
    name: flat ? "counting (flat)" : "counting (contract only)",
    admit: (b) => {
      calls.admit++;
      return inner.admit(b);
    },
    adjust: (b) => {
      calls.adjust++;
      return inner.adjust(b);
    },
    renew: (l, ttl) => {
      calls.renew++;
      return inner.renew(l, ttl);
    },
    read: (q) => {
      calls.read++;
      return inner.read(q);
    },
    close: () => inner.close(),
  };
  if (!flat) return { store, calls };
  const capabilities = {
    flat: {
      admitFlat: (b: FlatBatch, r: FlatResult) => {
        calls.admit++;
        inner.admitFlat(b, r);
      },
      adjustFlat: (b: FlatBatch, r: FlatResult) => {
        calls.adjust++;
        inner.adjustFlat(b, r);
      },
      renewFlat: (lease: LeaseRef, ttlMs: number, handle: unknown, kept: { expiry: number } | undefined) => {
        calls.renew++;
        return inner.renewFlat(lease, ttlMs, handle, kept);
      },
      recordTicket: (id: string, finished: boolean, expiry: number, keepMs: number) =>
        inner.recordTicket(id, finished, expiry, keepMs),
    },
  };
  return { store: { ...store, capabilities }, calls };
}

export interface World {
  gate: Gate;
  store: CounterStore;
  memory: MemoryStore;
  calls: Calls;
  records: SpendRecord[];
  clock: { now: number };
}

/** A gate on a counting memory store with an injected clock (the store's; the budgets read it through it). */
export function world(flat: boolean, options: Partial<GateOptions> = {}): World {
  const clock = { now: T0 };
  const memory = createMemoryStore({ now: () => clock.now });
  const { store, calls } = countingStore(memory, flat);
  const records: SpendRecord[] = [];
  const gate = createGate({
    store,
    leaseTtlMs: 30_000,
    ...options,
    budgets: { prices: PRICES, now: () => clock.now, sink: { write: (r) => void records.push(r) }, ...options.budgets },
  });
  return { gate, store, memory, calls, records, clock };
}

/** The request of the counting tests: 3 scopes (the key with requests, tokens and max parallel) and 3 budgets. */
export const KEY: Descriptor = { scope: "api_key", value: "k1", requests: 100, tokens: 100_000, maxParallel: 5 };
export const TEAM: Descriptor = { scope: "team", value: "t1", requests: 1000, tokens: 1_000_000 };
export const USER: Descriptor = { scope: "user", value: "u1", requests: 1000, tokens: 1_000_000 };
export const BUDGETS: BudgetSpec[] = [
  { scope: "key", id: "k1", maxBudget: "1", duration: "1d" },
  { scope: "team", id: "t1", maxBudget: "10", duration: "1mo" },
  { scope: "user", id: "u1", maxBudget: "5", duration: "30d" },
];

export function admitted(a: GateAdmission) {
  if (!a.ok) throw new Error(`expected an admission, got a ${a.reason} denial`);
  return a;
}

export function applied<A>(o: Outcome<A>): { status: "applied" } & A {
  if (o.status !== "applied") throw new Error(`expected an applied outcome, got ${o.status}`);
  return o;
}

/** Used amounts of the descriptors' limits, as `scope:type=used`, read from the memory store (not counted). */
export async function used(w: World, ds: Descriptor[]): Promise<string[]> {
  return (await createLimiter({ store: w.memory }).status(ds)).map((s) => `${s.scope}:${s.type}=${s.used}`);
}

/** Spend and held cost of budgets, as `[spend, reserved]` each, read from the memory store (not counted). */
export async function spend(w: World, specs: BudgetSpec[]): Promise<Array<[number, number]>> {
  const budgets = createBudgets({ store: w.memory, prices: PRICES, now: () => w.clock.now });
  return (await budgets.status(specs)).map((s) => [s.spend, s.reserved]);
}
