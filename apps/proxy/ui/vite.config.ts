import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The admin UI: Preact + uPlot, built into `dist/ui` of @tollgate/proxy (served at `/ui`). Everything is bundled:
 * no CDN at run time. `base: "./"` keeps asset URLs relative, so the UI works under any mount path.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../dist/ui", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
  },
});
