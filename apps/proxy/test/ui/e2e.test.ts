/// <reference lib="dom" />
/**
 * The admin UI end to end, in headless Chromium against the real proxy process with its database (SQLite):
 * sign in → team with a budget → key in it (secret shown once, copied) → requests through the proxy with the official
 * `openai` client → the spend chart and the live limits show them (live limits refresh on their own) → block → the
 * next request gets 401 → unblock → it works again. Then the role test: a read-only admin sees no mutation controls,
 * and the API refuses a mutation anyway.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ProxyProcess, startProxyProcess } from "@tollgate/test-servers";
import OpenAI from "openai";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BrowserHandle, launchBrowser } from "./browser.js";

const MASTER = "sk-ui-e2e-master";
const MODEL = "gpt-4o-mini";

let dir: string;
let proxy: ProxyProcess;
let browser: BrowserHandle;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-ui-e2e-"));
  proxy = await startProxyProcess({
    config: `
model_list:
  - model_name: ${MODEL}
    litellm_params:
      model: mock/${MODEL}
      mock_response: "Hello from the mock provider."
      input_cost_per_token: 0.00001
      output_cost_per_token: 0.00002
general_settings:
  master_key: ${MASTER}
  database_url: ${join(dir, "tollgate.db")}
`,
  });
  browser = await launchBrowser();
  await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: proxy.url });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const client = (key: string) => new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: key, maxRetries: 0, timeout: 30_000 });

async function ask(key: string, user = "customer-1") {
  return client(key).chat.completions.create({ model: MODEL, user, messages: [{ role: "user", content: "Hi there" }] });
}

async function signIn(page: Page, key: string) {
  await page.goto(`${proxy.url}/ui/`);
  await page.getByLabel("Master key or API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Opens a section from the top navigation. */
const nav = (page: Page, name: string) =>
  page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name, exact: true }).click();

/** Clicks `refresh` until `check` holds (effects that land after a batched ledger flush). */
async function until(page: Page, refresh: () => Promise<void>, check: () => Promise<boolean>, what: string) {
  const t0 = Date.now();
  for (;;) {
    if (await check()) return;
    if (Date.now() - t0 > 30_000) throw new Error(`timed out waiting for ${what}`);
    await refresh();
    await page.waitForTimeout(250);
  }
}

describe("admin UI end to end", () => {
  let secret = "";
  let ciBot = "";

  it("signs in, creates a team with a budget and a key in it, shows the secret once", async () => {
    const { page } = browser;
    await signIn(page, MASTER);
    expect(await page.getByTestId("role").textContent()).toBe("Proxy admin");

    await nav(page, "Teams");
    await page.getByRole("button", { name: "New team" }).click();
    const teamForm = page.getByRole("dialog", { name: "New team" });
    await teamForm.getByLabel("Team name", { exact: true }).fill("Research");
    await teamForm.getByLabel("Max budget (USD)", { exact: true }).fill("-5");
    await teamForm.getByRole("button", { name: "Create team" }).click();
    // validated before sending: the error sits next to the field
    await teamForm.getByText("A non-negative amount in USD").waitFor();
    await teamForm.getByLabel("Max budget (USD)", { exact: true }).fill("5");
    await teamForm.getByLabel("Budget period", { exact: true }).fill("30d");
    await teamForm.getByLabel("Requests per minute", { exact: true }).fill("100");
    await teamForm.getByRole("button", { name: "Create team" }).click();
    await page.locator("tbody tr", { hasText: "Research" }).waitFor();
    expect(await page.locator("tbody tr", { hasText: "Research" }).textContent()).toContain("$5.00");

    await nav(page, "Keys");
    const newKey = page.getByRole("button", { name: "New key" });
    await newKey.click();
    const keyForm = page.getByRole("dialog", { name: "New key" });
    // keyboard and screen-reader basics: focus starts in the first field, every control has a label, Escape closes
    // the dialog and gives the focus back
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe("new-key-key_alias");
    const unlabelled = await keyForm.evaluate((d) =>
      [...d.querySelectorAll("input, select, textarea")]
        .filter((el) => (el as HTMLInputElement).labels?.length === 0)
        .map((el) => el.id),
    );
    expect(unlabelled).toEqual([]);
    await page.keyboard.press("Escape");
    await keyForm.waitFor({ state: "detached" });
    await expect.poll(() => newKey.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.press("Enter");
    await keyForm.getByLabel("Alias", { exact: true }).fill("e2e-key");
    await keyForm.getByLabel("Team", { exact: true }).selectOption({ label: "Research" });
    await keyForm.getByLabel("Max budget (USD)", { exact: true }).fill("1");
    await keyForm.getByLabel("Requests per minute", { exact: true }).fill("50");
    await keyForm.getByLabel("Tokens per minute", { exact: true }).fill("100000");
    await keyForm.getByLabel("Max parallel requests", { exact: true }).fill("4");
    await keyForm.getByRole("button", { name: "Create key" }).click();

    const shown = page.getByRole("dialog", { name: "Save your new key" });
    secret = await shown.getByLabel("New key", { exact: true }).inputValue();
    expect(secret).toMatch(/^sk-/);
    await shown.getByRole("button", { name: "Copy" }).click();
    await shown.getByRole("button", { name: "Copied" }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await shown.getByRole("button", { name: "Done" }).click();
    const row = page.locator("tbody tr", { hasText: "e2e-key" });
    await row.waitFor();
    expect(await row.textContent()).toContain("Research");
    // the secret is never shown again
    expect(await page.content()).not.toContain(secret);

    // two more keys (through the API) so the keys page has something to list
    const admin = { authorization: `Bearer ${MASTER}`, "content-type": "application/json" };
    for (const body of [
      { key_alias: "ci-bot", max_budget: 20, budget_duration: "30d", rpm_limit: 120, models: [MODEL] },
      { key_alias: "batch-jobs", tpm_limit: 500000, max_parallel_requests: 8 },
    ]) {
      const r = await fetch(`${proxy.url}/key/generate`, {
        method: "POST",
        headers: admin,
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(200);
      if (body.key_alias === "ci-bot") ciBot = ((await r.json()) as { key: string }).key;
    }
  }, 90_000);

  it("shows requests sent with the openai client in the spend chart and the live limits", async () => {
    const { page } = browser;
    for (let i = 0; i < 3; i++) {
      const r = await ask(secret);
      expect(r.choices[0]?.message.content).toContain("Hello");
    }
    for (let i = 0; i < 2; i++) await ask(ciBot, "customer-2");

    await nav(page, "Spend");
    const table = page.getByTestId("spend-table");
    await until(
      page,
      () => page.getByRole("button", { name: "Refresh" }).click(),
      async () => (await table.count()) > 0 && /e2e-key[^\d]*\$[\d.]+3/.test((await table.textContent()) ?? ""),
      "3 requests of e2e-key in the spend table",
    );
    const keyRow = table.locator("tbody tr", { hasText: "e2e-key" });
    expect((await keyRow.locator("td").nth(1).textContent())?.trim()).toBe("3");
    expect(await keyRow.locator("td").nth(0).textContent()).not.toBe("$0.00");
    await page.locator(".chart[data-ready]").first().waitFor();
    await page.getByLabel("Group by", { exact: true }).selectOption("team");
    await table.locator("tbody tr", { hasText: "Research" }).waitFor();
    await page.getByLabel("Group by", { exact: true }).selectOption("model");
    await table.locator("tbody tr", { hasText: MODEL }).waitFor();
    await page.getByLabel("Group by", { exact: true }).selectOption("end_user");
    await table.locator("tbody tr", { hasText: "customer-1" }).waitFor();
    await page.getByLabel("Group by", { exact: true }).selectOption("api_key");
    await table.locator("tbody tr", { hasText: "e2e-key" }).waitFor();
    await page.locator(".chart[data-ready]").nth(1).waitFor();
    await page.locator(".toast:empty").waitFor({ state: "attached" });
    await browser.shot("spend");

    // the spend logs, filtered by key alias
    await nav(page, "Logs");
    await page.getByLabel("Key alias", { exact: true }).fill("e2e-key");
    await page.getByRole("button", { name: "Apply filters" }).click();
    const logs = page.getByTestId("logs-table").locator("tbody tr", { hasText: "e2e-key" });
    await until(
      page,
      async () => {},
      async () => (await logs.count()) === 3,
      "3 log rows of e2e-key",
    );
    expect(await logs.first().textContent()).toContain(MODEL);
    expect(await logs.filter({ hasText: "success" }).count()).toBe(3);
    await browser.shot("logs");

    // live limits of the key: 3 of 50 requests, spend against the $1 budget, the team's budget too
    await nav(page, "Keys");
    await page.getByRole("link", { name: "Live limits of key e2e-key" }).click();
    const limits = page.getByTestId("live-limits");
    const requests = limits.locator('tr[data-scope="api_key"][data-type="requests"] [data-testid="used"]');
    await until(
      page,
      async () => {},
      async () => (await requests.count()) > 0 && (await requests.textContent()) === "3 / 50",
      "3 / 50",
    );
    expect(await limits.locator('tr[data-scope="api_key"][data-type="max_parallel_requests"]').count()).toBe(1);
    const budgets = page.getByTestId("live-budgets");
    expect(await budgets.locator('tr[data-scope="key"] [data-testid="spend"]').textContent()).toMatch(/\/ \$1\.00$/);
    expect(await budgets.locator('tr[data-scope="team"] [data-testid="spend"]').textContent()).toMatch(/\/ \$5\.00$/);
    // it refreshes on its own: one more request shows up without touching the page
    await ask(secret);
    await requests.filter({ hasText: "4 / 50" }).waitFor({ timeout: 15_000 });
    await browser.shot("live-limits");
  }, 90_000);

  it("blocks the key (next request 401) and unblocks it", async () => {
    const { page } = browser;
    await nav(page, "Keys");
    await page.getByRole("button", { name: "Block key e2e-key" }).click();
    await page.getByRole("dialog", { name: "Block key?" }).getByRole("button", { name: "Block key" }).click();
    const row = page.locator("tbody tr", { hasText: "e2e-key" });
    await row.getByText("Blocked").waitFor();

    const err = await ask(secret).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
    expect((err as Error).message).toMatch(/blocked/i);
    await browser.shot("keys-blocked");

    await page.getByRole("button", { name: "Unblock key e2e-key" }).click();
    await page.getByRole("dialog", { name: "Unblock key?" }).getByRole("button", { name: "Unblock key" }).click();
    await row.getByText("Active").waitFor();
    expect((await ask(secret)).choices.length).toBe(1);
    await page.reload();
    await page.locator("tbody tr", { hasText: "batch-jobs" }).waitFor();
    await page.locator(".toast:empty").waitFor({ state: "attached" });
    await browser.shot("keys");
  }, 90_000);

  it("users, organizations, end users and budgets: create, edit, delete", async () => {
    const { page } = browser;
    const cases: {
      section: string;
      noun: string;
      fill: Record<string, string>;
      select?: Record<string, string>;
      label: string;
      edit: [string, string, string];
    }[] = [
      {
        section: "Users",
        noun: "user",
        fill: { "User id": "smoke-user" },
        select: { Role: "Internal user" },
        label: "smoke-user",
        edit: ["Max budget (USD)", "3", "$3.00"],
      },
      {
        section: "Organizations",
        noun: "organization",
        fill: { "Organization name": "Acme", "Max budget (USD)": "10" },
        label: "Acme",
        edit: ["Max budget (USD)", "20", "$20.00"],
      },
      {
        section: "End users",
        noun: "end user",
        fill: { "End-user id": "smoke-customer", "Max budget (USD)": "1" },
        label: "smoke-customer",
        edit: ["Max budget (USD)", "2", "$2.00"],
      },
      {
        section: "Budgets",
        noun: "budget",
        fill: { "Budget id": "smoke-budget", "Max budget (USD)": "5", "Budget period": "1d" },
        label: "smoke-budget",
        edit: ["Max budget (USD)", "6", "$6.00"],
      },
    ];
    for (const c of cases) {
      await nav(page, c.section);
      await page.getByRole("button", { name: `New ${c.noun}` }).click();
      const form = page.getByRole("dialog", { name: `New ${c.noun}` });
      for (const [label, value] of Object.entries(c.fill)) await form.getByLabel(label, { exact: true }).fill(value);
      for (const [label, option] of Object.entries(c.select ?? {})) {
        await form.getByLabel(label, { exact: true }).selectOption({ label: option });
      }
      await form.getByRole("button", { name: `Create ${c.noun}` }).click();
      await form.waitFor({ state: "detached" });
      const row = page.locator("tbody tr", { hasText: c.label });
      await row.waitFor();

      await page.getByRole("button", { name: `Edit ${c.noun} ${c.label}` }).click();
      const edit = page.getByRole("dialog", { name: `Edit ${c.noun} ${c.label}` });
      await edit.getByLabel(c.edit[0], { exact: true }).fill(c.edit[1]);
      await edit.getByRole("button", { name: "Save changes" }).click();
      await edit.waitFor({ state: "detached" });
      await row.getByText(c.edit[2]).waitFor();

      await page.getByRole("button", { name: `Delete ${c.noun} ${c.label}` }).click();
      await page
        .getByRole("dialog", { name: `Delete ${c.noun}?` })
        .getByRole("button", { name: `Delete ${c.noun}` })
        .click();
      await row.waitFor({ state: "detached" });
    }
  }, 90_000);

  it("a read-only admin sees no mutation controls, and the API refuses a mutation anyway", async () => {
    const admin = { authorization: `Bearer ${MASTER}`, "content-type": "application/json" };
    const created = await fetch(`${proxy.url}/user/new`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ user_id: "auditor", user_role: "proxy_admin_viewer" }),
    });
    expect(created.status).toBe(200);
    const viewerKey = ((await created.json()) as { key: string }).key;
    expect(viewerKey).toMatch(/^sk-/);
    const countKeys = async () =>
      ((await (await fetch(`${proxy.url}/key/list?size=100`, { headers: admin })).json()) as { total_count: number })
        .total_count;
    const before = await countKeys();

    const { page } = browser;
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, viewerKey);
    expect(await page.getByTestId("role").textContent()).toBe("Proxy admin (viewer)");
    await nav(page, "Keys");
    await page.locator("tbody tr", { hasText: "e2e-key" }).waitFor();
    const main = page.locator("main");
    const mutations = /^(New |Edit|Delete|Block|Unblock|Regenerate|Add member|Remove)/;
    expect(await main.getByRole("button", { name: mutations }).count()).toBe(0);
    expect(await main.getByRole("link", { name: "Live limits of key e2e-key" }).count()).toBe(1);
    for (const section of ["Teams", "Users", "Budgets", "End users", "Organizations"]) {
      await nav(page, section);
      await page.getByRole("heading", { level: 1, name: section }).waitFor();
      await page.locator("table[aria-busy='false']").first().waitFor();
      expect(await main.getByRole("button", { name: mutations }).count(), section).toBe(0);
    }
    await browser.shot("viewer-teams");

    // the API refuses the mutation the UI does not offer (from the page, with the viewer's key)
    const refused = await page.evaluate(async (key) => {
      const r = await fetch("/key/generate", {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ key_alias: "sneaky" }),
      });
      return { status: r.status, body: await r.json() };
    }, viewerKey);
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toMatch(/not allowed/);
    expect(await countKeys()).toBe(before);
  }, 90_000);

  it("a team admin manages their team's keys and members, and sees nothing else", async () => {
    const admin = { authorization: `Bearer ${MASTER}`, "content-type": "application/json" };
    const post = async (path: string, body: unknown) => {
      const r = await fetch(`${proxy.url}${path}`, { method: "POST", headers: admin, body: JSON.stringify(body) });
      expect(r.status, path).toBe(200);
      return r.json() as Promise<Record<string, unknown>>;
    };
    const teams = (await (await fetch(`${proxy.url}/team/list`, { headers: admin })).json()) as {
      team_id: string;
      team_alias: string;
    }[];
    const research = teams.find((t) => t.team_alias === "Research")!;
    const lead = (await post("/user/new", { user_id: "lead", user_role: "internal_user" })).key as string;
    await post("/team/member_add", { team_id: research.team_id, member: { user_id: "lead", role: "admin" } });

    const { page } = browser;
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, lead);
    expect(await page.getByTestId("role").textContent()).toBe("Internal user");
    const sections = page.getByRole("navigation", { name: "Sections" });
    expect(await sections.getByRole("link", { name: "Users", exact: true }).count()).toBe(0);
    expect(await sections.getByRole("link", { name: "Budgets", exact: true }).count()).toBe(0);

    await nav(page, "Keys");
    await page.locator("tbody tr", { hasText: "e2e-key" }).waitFor();
    // the team's key, with the team admin's controls; keys outside the team are not listed
    expect(await page.getByRole("button", { name: "Block key e2e-key" }).count()).toBe(1);
    expect(await page.getByRole("button", { name: "Edit key e2e-key" }).count()).toBe(1);
    expect(await page.locator("tbody tr", { hasText: "ci-bot" }).count()).toBe(0);

    await nav(page, "Teams");
    await page.getByRole("button", { name: "Members of team Research" }).click();
    const members = page.getByRole("dialog", { name: "Members of Research" });
    await members.getByRole("cell", { name: "lead", exact: true }).waitFor();
    // the team admin adds a member with a budget in the team
    await members.getByRole("button", { name: "Add member" }).click();
    await members.getByLabel("User id", { exact: true }).fill("new-dev");
    await members.getByLabel("Budget in team (USD)", { exact: true }).fill("0.5");
    await members.getByRole("button", { name: "Add member" }).click();
    const added = members.locator("tbody tr", { hasText: "new-dev" });
    await added.waitFor();
    expect(await added.textContent()).toContain("$0.50");
    await members.getByRole("button", { name: "Close" }).click();
    expect(await page.getByRole("button", { name: "New team" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Delete team Research" }).count()).toBe(0);
    await browser.shot("team-admin-keys");
  }, 90_000);
});
