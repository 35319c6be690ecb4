import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base.js";

// Two entry points sharing one copy of every module (see packages/core/tsup.config.ts).
export default defineConfig({ ...packageBuild, entry: ["src/index.ts", "src/internal.ts"], splitting: true });
