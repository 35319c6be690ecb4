import { type AdmitBatch, type CounterStore, StoreUnavailableError, TollgateError } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";
import { afterEach, describe, expect, it, vi } from "vitest";
import { perInstanceLimit, type StoreHealthEvent, withFailurePolicy } from "../src/index.js";

type Mode = "up" | "refused" | "hang";

/** A real (memory) backend that can be switched to refuse connections or to never answer. */
function switchableBackend() {
  const inner = createMemoryStore({ now: () => 1_000_000 });
  const state = { mode: "up" as Mode, calls: 0 };
  const gate = <T>(fn: () => Promise<T>): Promise<T> => {
    state.calls++;
    if (state.mode === "refused") return Promise.reject(new StoreUnavailableError("test", "connect ECONNREFUSED"));
    if (state.mode === "hang") return new Promise<T>(() => {});
    return fn();
  };
  const store: CounterStore = {
    contractVersion: inner.contractVersion,
    name: "test",
    admit: (b) => gate(() => inner.admit(b)),
    adjust: (b) => gate(() => inner.adjust(b)),
    renew: (l, t) => gate(() => inner.renew(l, t)),
    read: (q) => gate(() => inner.read(q)),
    close: () => inner.close(),
  };
  return { store, state };
}

const batch = (limit: number): AdmitBatch => ({
  windows: [
    {
      key: "{k}",
      windowMs: 60_000,
      algorithm: "fixed",
      counters: [{ name: "requests", limit, amount: 1, enforce: true }],
    },
  ],
  gauges: [],
});

afterEach(() => {
  vi.useRealTimers();
});

describe("withFailurePolicy", () => {
  it("closed: fails fast with STORE_UNAVAILABLE, probes once per interval, recovers and emits each switch", async () => {
    const { store: backend, state } = switchableBackend();
    let now = 0;
    const store = withFailurePolicy(backend, { policy: "closed", retryIntervalMs: 1000, now: () => now });
    const events: StoreHealthEvent[] = [];
    const off = store.onHealthChange((e) => events.push(e));
    store.onHealthChange(() => {
      throw new Error("a broken listener never breaks the store");
    });
    expect((await store.admit(batch(10))).admitted).toBe(true);

    state.mode = "refused";
    await expect(store.admit(batch(10))).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(store.health).toBe("degraded");
    const callsWhenDegraded = state.calls;
    // Within the retry interval the backend is not asked at all.
    now = 999;
    for (let i = 0; i < 5; i++) {
      await expect(store.admit(batch(10))).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    }
    expect(state.calls).toBe(callsWhenDegraded);
    // A probe after the interval that fails keeps it degraded.
    now = 1000;
    await expect(store.admit(batch(10))).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    expect(state.calls).toBe(callsWhenDegraded + 1);

    state.mode = "up";
    now = 1500;
    await expect(store.admit(batch(10))).rejects.toMatchObject({ code: "STORE_UNAVAILABLE" });
    now = 2000;
    expect((await store.admit(batch(10))).degraded).toBeUndefined();
    expect(store.health).toBe("healthy");
    expect(events.map((e) => [e.state, e.at])).toEqual([
      ["degraded", 0],
      ["healthy", 2000],
    ]);
    expect(events[0]!.cause).toBeInstanceOf(StoreUnavailableError);
    off();
    state.mode = "refused";
    await store.admit(batch(10)).catch(() => undefined);
    expect(events).toHaveLength(2);
  });

  it("a backend that never answers counts as down after timeoutMs", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store: backend, state } = switchableBackend();
    const store = withFailurePolicy(backend, { policy: "closed", timeoutMs: 50 });
    state.mode = "hang";
    const p = store.admit(batch(10));
    const settled = p.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(49);
    expect(store.health).toBe("healthy");
    await vi.advanceTimersByTimeAsync(1);
    const err = await settled;
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(store.health).toBe("degraded");
  });

  it("open: admits without counting and says so", async () => {
    const { store: backend, state } = switchableBackend();
    const store = withFailurePolicy(backend, { policy: "open", now: () => 42 });
    state.mode = "refused";
    const r = await store.admit(batch(0));
    expect(r).toMatchObject({ admitted: true, degraded: "open", now: 42 });
    expect(r.windows[0]!.counters[0]).toEqual({ value: 0, previous: 0, held: 0 });
    const adj = await store.adjust({
      windows: [{ key: "{k}", windowMs: 60_000, algorithm: "fixed", counters: [{ name: "requests", delta: -1 }] }],
    });
    expect(adj).toMatchObject({ applied: [false], released: 0, degraded: "open" });
    expect(await store.renew({ id: "x", gauges: [{ key: "{k}", name: "g" }], holds: [] }, 1000)).toBe(1);
  });

  it("fallback: decides on a local store with each limit divided by the instance count", async () => {
    const { store: backend, state } = switchableBackend();
    const fallbackStore = createMemoryStore();
    const store = withFailurePolicy(backend, { policy: "fallback", instances: 3, fallbackStore, closeFallback: true });
    state.mode = "refused";
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await store.admit(batch(10)));
    expect(results.map((r) => r.admitted)).toEqual([true, true, true, false, false, false]);
    expect(results.every((r) => r.degraded === "fallback")).toBe(true);
    expect(perInstanceLimit(10, 3)).toBe(3);
    expect(perInstanceLimit(2, 3)).toBe(1);
    expect(perInstanceLimit(0, 3)).toBe(0);
    await store.close();
    await store.close();
    // Closed means closed, even while degraded (the policy never answers for a closed store).
    await expect(store.admit(batch(10))).rejects.toMatchObject({ code: "STORE_CLOSED" });
  });

  it("bad input and corrupt data are not outages: they pass through and never switch the state", async () => {
    const { store: backend, state } = switchableBackend();
    const store = withFailurePolicy(backend, { policy: "open" });
    await expect(store.admit(batch(-1))).rejects.toMatchObject({ code: "INVALID_LIMIT" });
    expect(store.health).toBe("healthy");
    state.mode = "refused";
    await store.admit(batch(1));
    expect(store.health).toBe("degraded");
    // While degraded the policy still validates: bad input is never admitted "open".
    await expect(store.admit(batch(-1))).rejects.toMatchObject({ code: "INVALID_LIMIT" });
  });

  it("rejects bad options with typed errors", () => {
    const { store: backend } = switchableBackend();
    expect(() => withFailurePolicy(backend, { timeoutMs: 0 })).toThrow(TollgateError);
    expect(() => withFailurePolicy(backend, { instances: 0 })).toThrow(TollgateError);
    expect(() => withFailurePolicy(backend, { policy: "maybe" as never })).toThrow(TollgateError);
    // The fallback decides on a store given up front; without one the policy cannot work.
    expect(() => withFailurePolicy(backend, { policy: "fallback" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => withFailurePolicy(backend, { policy: "fallback", fallbackStore: {} as never })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
