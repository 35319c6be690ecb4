/**
 * The CounterStore contract suite, in groups. `runStoreContract` registers every group for a store factory; a store
 * may also run some groups alone (`contractGroups`) and add its own cases with the same fixtures (`extend`, or
 * `createContractContext` in its own file).
 */
import { describe } from "vitest";
import { type ContractContext, createContractContext, type StoreContractOptions } from "./context.js";
import { adjustmentContract } from "./groups/adjustments.js";
import { admissionContract } from "./groups/admission.js";
import { badInputContract } from "./groups/bad-input.js";
import { engineContract } from "./groups/engine.js";
import { holdContract } from "./groups/holds.js";
import { isolationContract } from "./groups/isolation.js";
import { leaseContract } from "./groups/leases.js";
import { ticketContract } from "./groups/tickets.js";
import { windowContract } from "./groups/windows.js";

export {
  type ContractContext,
  createContractContext,
  type Fixture,
  gauge,
  held,
  inFlight,
  type StoreContractOptions,
  type StoreUnderTest,
  uid,
  values,
  win,
} from "./context.js";
export {
  adjustmentContract,
  admissionContract,
  badInputContract,
  engineContract,
  holdContract,
  isolationContract,
  leaseContract,
  ticketContract,
  windowContract,
};

/** A group of contract cases: registers its `describe` block for the context's store. */
export type ContractGroup = (ctx: ContractContext) => void;

/** Every group of the contract, in the order `runStoreContract` registers them. */
export const contractGroups = {
  admission: admissionContract,
  windows: windowContract,
  adjustments: adjustmentContract,
  holds: holdContract,
  leases: leaseContract,
  tickets: ticketContract,
  isolation: isolationContract,
  badInput: badInputContract,
  engine: engineContract,
} satisfies Record<string, ContractGroup>;

export type ContractGroupName = keyof typeof contractGroups;

/** Options of {@link runStoreContract}. */
export interface RunStoreContractOptions extends StoreContractOptions {
  /** The groups to run. @default every group of {@link contractGroups} */
  groups?: ContractGroupName[];
  /** The store's own cases, registered in the same `describe` with the same fixtures (`ctx.setup()`). */
  extend?: (ctx: ContractContext) => void;
}

/**
 * Registers the CounterStore contract suite (vitest `describe`/`it` blocks) for a store factory: every group, or
 * those named in `groups`, then the store's own cases from `extend`. Call it at the top level of a test file.
 */
export function runStoreContract(options: RunStoreContractOptions): void {
  describe(`CounterStore contract: ${options.name}`, () => {
    const ctx = createContractContext(options);
    const names = options.groups ?? (Object.keys(contractGroups) as ContractGroupName[]);
    for (const name of names) contractGroups[name](ctx);
    options.extend?.(ctx);
  });
}
