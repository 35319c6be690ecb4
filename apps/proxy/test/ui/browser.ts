/**
 * Headless Chromium for the UI tests: Debian's `chromium` driven by playwright-core 1.64 through `executablePath`
 * (playwright's own browser download cannot be used here). A fresh profile per launch; screenshots go to
 * `.tmp/ui-screenshots/` (or `TOLLGATE_SCREENSHOTS`).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BrowserContext, chromium, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const SCREENSHOTS =
  process.env.TOLLGATE_SCREENSHOTS ?? fileURLToPath(new URL("../../../../.tmp/ui-screenshots/", import.meta.url));

export interface BrowserHandle {
  context: BrowserContext;
  page: Page;
  /** Saves a full-page screenshot as `<name>.png` in {@link SCREENSHOTS}; returns its path. */
  shot(name: string, page?: Page): Promise<string>;
  close(): Promise<void>;
}

/** Launches headless Chromium with a new, empty profile. A missing browser is a clear failure, never a skip. */
export async function launchBrowser(): Promise<BrowserHandle> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install Debian's package (apt-get install -y chromium) or set CHROMIUM_PATH`,
    );
  }
  const profile = mkdtempSync(join(tmpdir(), "tollgate-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 860 },
    timeout: 60_000,
  });
  context.setDefaultTimeout(20_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    context,
    page,
    async shot(name, p = page) {
      const path = join(SCREENSHOTS, `${name}.png`);
      await p.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
      if (errors.length > 0) throw new Error(`the page threw: ${errors.join("; ")}`);
    },
  };
}
