import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Node 20 lacks Map.groupBy, which vitest 5's reporter uses when printing failures.
if (typeof (Map as { groupBy?: unknown }).groupBy !== "function") {
  Object.defineProperty(Map, "groupBy", {
    configurable: true,
    writable: true,
    value<K, T>(items: Iterable<T>, keyOf: (item: T, index: number) => K): Map<K, T[]> {
      const out = new Map<K, T[]>();
      let i = 0;
      for (const item of items) {
        const key = keyOf(item, i++);
        const list = out.get(key);
        if (list) list.push(item);
        else out.set(key, [item]);
      }
      return out;
    },
  });
}

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      "@tollgate/core/internal": src("./packages/core/src/internal.ts"),
      "@tollgate/core": src("./packages/core/src/index.ts"),
      "@tollgate/store-memory": src("./packages/store-memory/src/index.ts"),
      "@tollgate/store-redis": src("./packages/store-redis/src/index.ts"),
      "@tollgate/store-upstash": src("./packages/store-upstash/src/index.ts"),
      "@tollgate/store-test-suite": src("./packages/store-test-suite/src/index.ts"),
      "@tollgate/redis-scripts": src("./packages/redis-scripts/src/index.ts"),
      "@tollgate/budgets/internal": src("./packages/budgets/src/internal.ts"),
      "@tollgate/budgets": src("./packages/budgets/src/index.ts"),
      "@tollgate/gate": src("./packages/gate/src/index.ts"),
      "@tollgate/test-servers": src("./tooling/test-servers/src/index.ts"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "tooling/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts"],
    globalSetup: ["./tooling/test-servers/src/global-setup.ts"],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    reporters: ["default", "json"],
    outputFile: { json: ".tmp/vitest-results.json" },
  },
});
