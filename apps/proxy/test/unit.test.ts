import { describe, expect, it } from "vitest";
import { readUsage, usageIn } from "../src/call.js";
import { ModelGroup } from "../src/routing.js";
import type { Target } from "../src/upstream.js";

describe("usage of a completion body", () => {
  it("finds the usage object without parsing the body, wherever it is", () => {
    const body = JSON.stringify({
      id: "x",
      choices: [{ message: { content: 'text with "usage": {"prompt_tokens": 999} inside' } }],
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 4 } },
    });
    expect(usageIn(body)).toEqual({ inputTokens: 12, outputTokens: 5, cachedInputTokens: 4, reasoningTokens: 0 });
    const first = '{"usage": {"prompt_tokens": 3, "completion_tokens": 1}, "choices": []}';
    expect(usageIn(first)).toMatchObject({ inputTokens: 3, outputTokens: 1 });
  });

  it("answers undefined for a missing, null or malformed usage (the caller falls back to the estimate)", () => {
    expect(usageIn('{"id":"x"}')).toBeUndefined();
    expect(usageIn('{"usage":null}')).toBeUndefined();
    expect(usageIn('{"usage":{"prompt_tokens":-1,"completion_tokens":2}}')).toBeUndefined();
    expect(usageIn('{"usage":{"prompt_tokens":1.5,"completion_tokens":2}}')).toBeUndefined();
    expect(usageIn('{"usage":{"prompt_tokens":1,')).toBeUndefined();
    expect(readUsage({ prompt_tokens: 5, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 9 } })).toEqual({
      inputTokens: 5,
      outputTokens: 2,
      cachedInputTokens: 0, // more cached than prompt tokens is nonsense: ignored
      reasoningTokens: 0,
    });
    expect(readUsage("usage")).toBeUndefined();
  });
});

describe("model groups", () => {
  const target = (id: string, weight: number) => ({ deployment: { id, weight, tpm: undefined } }) as unknown as Target;

  it("orders deployments by weight and tries those last seen at their limit last", () => {
    const a = target("a", 9);
    const b = target("b", 1);
    const g = new ModelGroup("m", [a, b]);
    let aFirst = 0;
    for (let i = 0; i < 2000; i++) if (g.order(0)[0] === a) aFirst++;
    expect(aFirst).toBeGreaterThan(1600); // about 90%
    expect(aFirst).toBeLessThan(1950);
    g.cool(a, 1000);
    for (let i = 0; i < 100; i++) expect(g.order(500)).toEqual([b, a]);
    expect(g.order(1000)).toHaveLength(2);
    const single = new ModelGroup("s", [a]);
    expect(single.order(0)).toBe(single.order(0)); // no allocation for one deployment
  });
});
