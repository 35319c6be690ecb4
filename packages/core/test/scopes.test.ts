import { describe, expect, it } from "vitest";
import { DEFAULT_WINDOW_MS, descriptorKey, scopes, validateDescriptor } from "../src/scopes.js";
import type { Descriptor } from "../src/types.js";
import { codeOf } from "./code-of.js";

describe("scopes builders: LiteLLM keys and value formats", () => {
  it.each([
    [scopes.apiKey("88dc28"), "api_key", "88dc28"],
    [scopes.user("u1"), "user", "u1"],
    [scopes.team("t1"), "team", "t1"],
    [scopes.teamMember("t1", "u2"), "team_member", "t1:u2"],
    [scopes.endUser("cust"), "end_user", "cust"],
    [scopes.organization("o1"), "organization", "o1"],
    [scopes.modelPerKey("88dc28", "gpt-4o"), "model_per_key", "88dc28:gpt-4o"],
    [scopes.modelPerTeam("t1", "gpt-4o"), "model_per_team", "t1:gpt-4o"],
    [scopes.modelPerOrganization("o1", "gpt-4o"), "model_per_organization", "o1:gpt-4o"],
    [scopes.modelPerProject("p1", "gpt-4o"), "model_per_project", "p1:gpt-4o"],
    [scopes.agent("a1"), "agent", "a1"],
    [scopes.agentSession("a1", "s9"), "agent_session", "a1:s9"],
    [scopes.modelPerProjectItpm("p1", "gpt-4o"), "model_per_project_itpm", "p1:gpt-4o"],
    [scopes.modelPerProjectOtpm("p1", "gpt-4o"), "model_per_project_otpm", "p1:gpt-4o"],
    [scopes.tagPerKey("88dc28", "prod"), "tag_per_key", "88dc28:prod"],
    [scopes.mcpPerKey("88dc28", "github"), "mcp_per_key", "88dc28:github"],
    [scopes.mcpPerTeam("t1", "github"), "mcp_per_team", "t1:github"],
  ])("%o", (d, scope, value) => {
    expect(d.scope).toBe(scope);
    expect(d.value).toBe(value);
    expect(d.windowMs).toBe(60_000);
  });

  it("defaults the window to one minute and keeps an explicit one", () => {
    expect(DEFAULT_WINDOW_MS).toBe(60_000);
    expect(scopes.team("t1", { requests: 5 }).windowMs).toBe(60_000);
    expect(scopes.team("t1", { requests: 5, windowMs: 1_000 }).windowMs).toBe(1_000);
  });

  it("carries every limit and option through unchanged", () => {
    const enforceWhen = () => true;
    const d = scopes.teamMember("team_1", "user_2", {
      requests: 10,
      tokens: 5_000,
      maxParallel: 2,
      algorithm: "sliding",
      shadow: true,
      enforceWhen,
    });
    expect(d).toEqual({
      scope: "team_member",
      value: "team_1:user_2",
      requests: 10,
      tokens: 5_000,
      maxParallel: 2,
      windowMs: 60_000,
      algorithm: "sliding",
      shadow: true,
      enforceWhen,
    });
  });

  it("every descriptor a builder makes has the same fields in the same order (one hidden class for the engine)", () => {
    const shapes = new Set(
      [
        scopes.apiKey("k"),
        scopes.team("t", { requests: 1 }),
        scopes.user("u", { tokens: 5, maxParallel: 1, shadow: false }),
        scopes.teamMember("t", "u", { windowMs: 1000, algorithm: "fixed", tokenType: "input" }),
        scopes.modelPerProjectOtpm("p", "m", { tokens: 9 }),
      ].map((d) => Object.keys(d).join(",")),
    );
    expect([...shapes]).toEqual([
      "scope,value,requests,tokens,maxParallel,windowMs,algorithm,tokenType,shadow,enforceWhen",
    ]);
  });

  it("the per-project input and output token builders count input and output tokens by default", () => {
    expect(scopes.modelPerProjectItpm("p", "m", { tokens: 10 }).tokenType).toBe("input");
    expect(scopes.modelPerProjectOtpm("p", "m", { tokens: 10 }).tokenType).toBe("output");
    expect(scopes.modelPerProjectOtpm("p", "m", { tokens: 10, tokenType: "total" }).tokenType).toBe("total");
    expect(scopes.apiKey("k", { tokens: 10 }).tokenType).toBeUndefined(); // "total"
  });

  it("limits cannot override scope or value", () => {
    const d = scopes.team("t1", { requests: 1, scope: "user", value: "x" } as never);
    expect(d.scope).toBe("team");
    expect(d.value).toBe("t1");
  });

  it("allows ':' inside ids (model names such as llama3:8b)", () => {
    expect(scopes.modelPerKey("k", "ollama/llama3:8b").value).toBe("k:ollama/llama3:8b");
  });

  it("LiteLLM's MCP, tag and per-project input/output token scopes keep LiteLLM's hash tags", () => {
    expect(descriptorKey(scopes.mcpPerKey("88dc28", "github", { requests: 5 }))).toBe("{mcp_per_key:88dc28:github}");
    expect(descriptorKey(scopes.mcpPerTeam("t1", "github"))).toBe("{mcp_per_team:t1:github}");
    expect(descriptorKey(scopes.tagPerKey("88dc28", "prod"))).toBe("{tag_per_key:88dc28:prod}");
    expect(descriptorKey(scopes.modelPerProjectItpm("p1", "openai/gpt-4o", { tokens: 1_000 }))).toBe(
      "{model_per_project_itpm:p1:openai/gpt-4o}",
    );
    expect(scopes.modelPerProjectOtpm("p1", "gpt-4o", { tokens: 500 }).tokens).toBe(500);
    expect(codeOf(() => scopes.mcpPerKey("k", ""))).toBe("INVALID_SCOPE");
    expect(codeOf(() => scopes.tagPerKey("k{", "t"))).toBe("INVALID_SCOPE");
    expect(codeOf(() => scopes.mcpPerTeam("t", "s", { requests: -1 }))).toBe("INVALID_LIMIT");
  });

  it("accepts 0 as a limit (denies everything)", () => {
    expect(scopes.apiKey("k", { requests: 0 }).requests).toBe(0);
  });

  it.each([
    ["empty id", () => scopes.apiKey("")],
    ["empty second part", () => scopes.teamMember("t1", "")],
    ["empty first part", () => scopes.modelPerTeam("", "gpt-4o")],
    ["{ in id", () => scopes.team("a{b")],
    ["} in id", () => scopes.agentSession("a", "s}")],
    ["non-string id", () => scopes.user(42 as unknown as string)],
  ])("INVALID_SCOPE: %s", (_name, fn) => {
    expect(codeOf(fn)).toBe("INVALID_SCOPE");
  });

  it.each([
    ["negative requests", { requests: -1 }],
    ["NaN tokens", { tokens: Number.NaN }],
    ["fractional maxParallel", { maxParallel: 1.5 }],
    ["Infinity requests", { requests: Number.POSITIVE_INFINITY }],
    ["string tokens", { tokens: "100" as unknown as number }],
    ["null requests", { requests: null as unknown as number }],
  ])("INVALID_LIMIT: %s", (_name, limits) => {
    expect(codeOf(() => scopes.apiKey("k", limits))).toBe("INVALID_LIMIT");
  });

  it.each([
    ["zero", 0],
    ["negative", -1_000],
    ["fractional", 1.5],
    ["NaN", Number.NaN],
  ])("INVALID_WINDOW: %s windowMs", (_name, windowMs) => {
    expect(codeOf(() => scopes.apiKey("k", { requests: 1, windowMs }))).toBe("INVALID_WINDOW");
  });
});

describe("validateDescriptor (hand-written descriptors)", () => {
  const ok: Descriptor = { scope: "custom_scope", value: "v", requests: 1 };

  it("accepts a valid descriptor without a window (the engine applies the default)", () => {
    expect(() => validateDescriptor(ok)).not.toThrow();
  });

  it.each<[string, Partial<Descriptor> | Record<string, unknown>, string]>([
    ["scope with a dash", { scope: "my-scope" }, "INVALID_SCOPE"],
    ["empty scope", { scope: "" }, "INVALID_SCOPE"],
    ["empty value", { value: "" }, "INVALID_SCOPE"],
    ["value with {", { value: "{x" }, "INVALID_SCOPE"],
    ["negative tokens", { tokens: -5 }, "INVALID_LIMIT"],
    ["NaN maxParallel", { maxParallel: Number.NaN }, "INVALID_LIMIT"],
    ["zero window", { windowMs: 0 }, "INVALID_WINDOW"],
    ["unknown algorithm", { algorithm: "gcra" }, "INVALID_ARGUMENT"],
    ["non-boolean shadow", { shadow: "yes" }, "INVALID_ARGUMENT"],
    ["non-function enforceWhen", { enforceWhen: true }, "INVALID_ARGUMENT"],
  ])("%s -> %s", (_name, patch, code) => {
    expect(codeOf(() => validateDescriptor({ ...ok, ...patch } as Descriptor))).toBe(code);
  });

  it("rejects a non-object with INVALID_ARGUMENT", () => {
    expect(codeOf(() => validateDescriptor(null as unknown as Descriptor))).toBe("INVALID_ARGUMENT");
  });
});

describe("descriptorKey", () => {
  it("is LiteLLM's hash-tagged base key", () => {
    expect(descriptorKey(scopes.teamMember("team_123", "user_456"))).toBe("{team_member:team_123:user_456}");
    expect(descriptorKey({ scope: "api_key", value: "88dc28" })).toBe("{api_key:88dc28}");
  });
});
