import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base.js";

// Two entry points sharing one copy of every module (splitting, also for CJS), so that a class such as
// TollgateError is the same whichever entry point a caller reached it through.
export default defineConfig({ ...packageBuild, entry: ["src/index.ts", "src/internal.ts"], splitting: true });
