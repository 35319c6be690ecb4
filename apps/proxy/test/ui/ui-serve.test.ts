/**
 * The admin UI served by the real proxy process (no database): static app with its CSP, sign-in with the master key,
 * a refused key shown next to the field, the models page; in headless Chromium.
 */
import { type ProxyProcess, startProxyProcess } from "@tollgate/test-servers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrowserHandle, launchBrowser } from "./browser.js";

const MASTER = "sk-ui-master-key";
const CONFIG = `
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: mock/gpt-4o-mini
      rpm: 600
      tpm: 200000
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
  - model_name: gpt-4o-mini
    litellm_params:
      model: mock/gpt-4o-mini
      rpm: 300
    model_info:
      access_groups: ["cheap"]
general_settings:
  master_key: ${MASTER}
`;

let proxy: ProxyProcess;
let browser: BrowserHandle;

beforeAll(async () => {
  proxy = await startProxyProcess({ config: CONFIG });
  browser = await launchBrowser();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.stop();
});

describe("the admin UI on the proxy", () => {
  it("is served at /ui with its assets, a strict CSP and nothing from elsewhere", async () => {
    expect(proxy.stdout()).toContain(`admin UI:   ${proxy.url}/ui`);
    const redirect = await fetch(`${proxy.url}/ui`, { redirect: "manual" });
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get("location")).toBe("/ui/");
    const res = await fetch(`${proxy.url}/ui/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await res.text();
    const assets = [...html.matchAll(/(?:src|href)="\.\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const a of assets) {
      const r = await fetch(`${proxy.url}/ui/${a}`);
      expect(r.status, a).toBe(200);
      expect(r.headers.get("cache-control")).toContain("immutable");
    }
    expect((await fetch(`${proxy.url}/ui/assets/nope.js`)).status).toBe(404);
  });

  it("refuses a wrong key next to the field, signs in with the master key, shows the models", async () => {
    const { page } = browser;
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(`${proxy.url}/ui/`);
    const key = page.getByLabel("Master key or API key");
    await key.fill("sk-wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => key.getAttribute("aria-invalid")).toBe("true");
    await expect.poll(() => page.locator("#signin-error").textContent()).toMatch(/refused/);
    await browser.shot("signin-refused");

    await key.fill(MASTER);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByTestId("role").filter({ hasText: "Proxy admin" }).waitFor();
    await page.getByRole("link", { name: "Models" }).click();
    const table = page.getByTestId("models-table");
    await table.getByText("mock/gpt-4o-mini").first().waitFor();
    expect(await table.locator("tbody tr").count()).toBe(2);
    expect(await table.textContent()).toContain("cheap");
    expect(await table.textContent()).toContain("600");
    await browser.shot("models");
    // everything the page loaded came from the proxy
    expect(requests.filter((u) => !u.startsWith(proxy.url) && !u.startsWith("data:"))).toEqual([]);
  });
});
