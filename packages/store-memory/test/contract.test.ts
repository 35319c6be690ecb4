import { runStoreContract } from "@tollgate/store-test-suite";
import { createMemoryStore } from "../src/index.js";

runStoreContract({
  name: "memory",
  create: ({ prefix }) => {
    let now = Date.UTC(2026, 0, 1);
    return {
      store: createMemoryStore({ prefix, now: () => now }),
      advance: (ms) => {
        now += ms;
      },
    };
  },
});
