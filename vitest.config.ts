import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      "@tollgate/core": src("./packages/core/src/index.ts"),
      "@tollgate/store-memory": src("./packages/store-memory/src/index.ts"),
      "@tollgate/store-redis": src("./packages/store-redis/src/index.ts"),
      "@tollgate/store-upstash": src("./packages/store-upstash/src/index.ts"),
      "@tollgate/store-test-suite": src("./packages/store-test-suite/src/index.ts"),
      "@tollgate/redis-scripts": src("./packages/redis-scripts/src/index.ts"),
      "@tollgate/budgets": src("./packages/budgets/src/index.ts"),
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
