/**
 * The one admission of a proxied request: `@tollgate/gate` (docs/design/gate.md). `admit({ id, limits, tokens,
 * model, budgets, maxTokens })` answers a ticket whose `settle` / `fail` / `release` / `renew` are one store call
 * each, applied exactly once per ticket id. This module only configures the gate for the proxy and maps the config's
 * `token_rate_limit_type` onto the descriptors (the gate counts each descriptor by its own `tokenType`).
 */
import type { PriceTable } from "@tollgate/budgets";
import type { CounterStore, Descriptor } from "@tollgate/core";
import {
  type Gate as CoreGate,
  createGate,
  type GateAdmission,
  type GateRequest,
  type Ticket,
  type TicketOutcome,
} from "@tollgate/gate";

export type { GateAdmission, Ticket, TicketOutcome };
export type AdmitRequest = GateRequest;

export type TokenType = "input" | "output" | "total";

/** What the proxy needs from the gate. */
export interface Gate {
  admit(req: AdmitRequest): Promise<GateAdmission>;
  /** The descriptor to admit for `d`: counted by the config's token type (cached copy when it has to change). */
  counted(d: Descriptor): Descriptor;
  readonly inner: CoreGate;
}

export interface AdmissionOptions {
  store: CounterStore;
  leaseTtlMs: number;
  tokenType: TokenType;
  mode: "reserve" | "check";
  shrink: boolean;
  prices: PriceTable;
}

/** Creates the proxy's gate. */
export function createAdmission(o: AdmissionOptions): Gate {
  const inner = createGate({
    store: o.store,
    leaseTtlMs: o.leaseTtlMs,
    budgets: { mode: o.mode, prices: o.prices, unknownModel: "allow", shrink: o.shrink },
  });
  const type = o.tokenType;
  // descriptors from authenticators are built once per key and reused: one typed copy each, kept while they live
  const copies = new WeakMap<Descriptor, Descriptor>();
  const counted =
    type === "total"
      ? (d: Descriptor) => d
      : (d: Descriptor) => {
          if (d.tokens === undefined || d.tokenType !== undefined) return d;
          let c = copies.get(d);
          if (c === undefined) {
            c = { ...d, tokenType: type };
            copies.set(d, c);
          }
          return c;
        };
  return {
    inner,
    counted,
    admit: (req) => inner.admit(req),
  };
}
