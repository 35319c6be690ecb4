import { defineConfig } from "tsup";

/** The proxy is an application: ESM only, with the CLI as a second entry (its shebang is kept by tsup). */
export default defineConfig({
  entry: ["src/index.ts", "src/cli.ts"],
  format: ["esm"],
  dts: { entry: "src/index.ts" },
  clean: true,
  sourcemap: true,
  target: "node20",
});
