import { afterEach, describe, expect, it } from "vitest";
import {
  denialBody,
  formatRateLimitMessage,
  formatResetDuration,
  formatUtcTimestamp,
  type HeaderStatus,
  rateLimitHeaders,
  retryAfterSeconds,
} from "../src/denials.js";
import type { Denial } from "../src/types.js";
import { codeOf } from "./code-of.js";

const NOW = Date.UTC(2026, 10, 23, 13, 0, 1, 0); // 2026-11-23 13:00:01.000 UTC

function status(
  patch: Partial<HeaderStatus> & Pick<HeaderStatus, "scope" | "type" | "limit" | "remaining">,
): HeaderStatus {
  return {
    value: "v",
    used: patch.limit - patch.remaining,
    resetAt: NOW + 60_000,
    wouldDeny: false,
    enforced: true,
    ...patch,
  };
}

const denial: Denial = {
  scope: "api_key",
  value: "88dc28",
  type: "requests",
  limit: 100,
  remaining: 0,
  used: 100,
  resetAt: NOW + 16_250, // 13:00:17.250
  wouldDeny: false,
  enforced: true,
  retryAfterMs: 16_250,
  now: NOW,
};

describe("formatRateLimitMessage (LiteLLM's 429 text)", () => {
  const savedTz = process.env.TZ;
  afterEach(() => {
    if (savedTz === undefined) delete process.env.TZ;
    else process.env.TZ = savedTz;
  });

  it("is exactly LiteLLM's text with the reset time in UTC, seconds truncated", () => {
    expect(formatRateLimitMessage(denial)).toBe(
      "Rate limit exceeded for api_key: 88dc28. Limit type: requests. Current limit: 100, Remaining: 0. " +
        "Limit resets at: 2026-11-23 13:00:17 UTC",
    );
  });

  it("prints true UTC whatever the process time zone", () => {
    process.env.TZ = "America/New_York";
    expect(new Date(NOW).getHours()).toBe(8); // the zone really changed
    expect(formatRateLimitMessage(denial)).toContain("Limit resets at: 2026-11-23 13:00:17 UTC");
  });

  it("pads every field and names tokens / max_parallel_requests limits", () => {
    const d: Denial = {
      ...denial,
      type: "tokens",
      limit: 5_000,
      remaining: 37,
      resetAt: Date.UTC(2027, 0, 2, 3, 4, 5),
    };
    expect(formatRateLimitMessage(d)).toBe(
      "Rate limit exceeded for api_key: 88dc28. Limit type: tokens. Current limit: 5000, Remaining: 37. " +
        "Limit resets at: 2027-01-02 03:04:05 UTC",
    );
    const g: Denial = { ...denial, scope: "team", value: "t1", type: "max_parallel_requests", limit: 2 };
    expect(formatRateLimitMessage(g)).toContain("for team: t1. Limit type: max_parallel_requests. Current limit: 2,");
  });

  it("never prints a negative remaining", () => {
    expect(formatRateLimitMessage({ ...denial, remaining: -3 })).toContain("Remaining: 0.");
  });

  it("rejects a non-finite reset time", () => {
    expect(codeOf(() => formatRateLimitMessage({ ...denial, resetAt: Number.NaN }))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => formatUtcTimestamp(Number.POSITIVE_INFINITY))).toBe("INVALID_ARGUMENT");
  });
});

describe("denialBody", () => {
  it("is the OpenAI error shape with code 429", () => {
    expect(denialBody(denial)).toEqual({
      error: {
        message:
          "Rate limit exceeded for api_key: 88dc28. Limit type: requests. Current limit: 100, Remaining: 0. " +
          "Limit resets at: 2026-11-23 13:00:17 UTC",
        type: "rate_limit_error",
        param: null,
        code: "429",
      },
    });
  });
});

describe("retryAfterSeconds", () => {
  it.each([
    [0, 1],
    [1, 1],
    [1_000, 1],
    [1_001, 2],
    [16_250, 17],
    [60_000, 60],
  ])("%i ms -> %i s", (ms, s) => {
    expect(retryAfterSeconds({ retryAfterMs: ms })).toBe(s);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])("rejects %d", (ms) => {
    expect(codeOf(() => retryAfterSeconds({ retryAfterMs: ms }))).toBe("INVALID_ARGUMENT");
  });
});

describe("formatResetDuration (OpenAI's reset syntax)", () => {
  it.each([
    [0, "0s"],
    [-5, "0s"],
    [0.4, "0s"],
    [20, "20ms"],
    [999, "999ms"],
    [999.6, "1s"],
    [1_000, "1s"],
    [1_500, "1.5s"],
    [8_640, "8.64s"],
    [59_999, "59.999s"],
    [60_000, "1m0s"],
    [360_000, "6m0s"],
    [179_560, "2m59.56s"],
    [3_600_000, "1h0m0s"],
    [3_723_004, "1h2m3.004s"],
    [90_000_000, "25h0m0s"],
  ])("%d ms -> %s", (ms, text) => {
    expect(formatResetDuration(ms)).toBe(text);
  });

  it("rejects NaN", () => {
    expect(codeOf(() => formatResetDuration(Number.NaN))).toBe("INVALID_ARGUMENT");
  });
});

describe("rateLimitHeaders", () => {
  const statuses: HeaderStatus[] = [
    status({
      scope: "api_key",
      value: "88dc28",
      type: "requests",
      limit: 100,
      remaining: 0,
      resetAt: denial.resetAt,
      windowMs: 60_000,
    }),
    status({
      scope: "api_key",
      value: "88dc28",
      type: "tokens",
      limit: 10_000,
      remaining: 2_500,
      resetAt: NOW + 17_250,
      windowMs: 60_000,
    }),
    status({
      scope: "team",
      value: "t1",
      type: "requests",
      limit: 1_000,
      remaining: 900,
      resetAt: NOW + 360_000,
      windowMs: 600_000,
    }),
    status({
      scope: "team",
      value: "t1",
      type: "tokens",
      limit: 50_000,
      remaining: 1_200,
      resetAt: NOW + 20,
      windowMs: 600_000,
    }),
    status({ scope: "api_key", value: "88dc28", type: "max_parallel_requests", limit: 5, remaining: 3, resetAt: NOW }),
    // shadow: tighter than anything, but it cannot throttle the client
    status({
      scope: "team_member",
      value: "t1:u1",
      type: "requests",
      limit: 10,
      remaining: 0,
      enforced: false,
      wouldDeny: true,
    }),
  ];

  it("on a denial: retry-after, LiteLLM, OpenAI and IETF headers, exactly", () => {
    expect(rateLimitHeaders(statuses, denial)).toEqual({
      "retry-after": "17",
      rate_limit_type: "requests",
      reset_at: "2026-11-23 13:00:17 UTC",
      "x-ratelimit-api_key-remaining-requests": "0",
      "x-ratelimit-api_key-limit-requests": "100",
      "x-ratelimit-api_key-remaining-tokens": "2500",
      "x-ratelimit-api_key-limit-tokens": "10000",
      "x-ratelimit-team-remaining-requests": "900",
      "x-ratelimit-team-limit-requests": "1000",
      "x-ratelimit-team-remaining-tokens": "1200",
      "x-ratelimit-team-limit-tokens": "50000",
      "x-ratelimit-api_key-remaining-max_parallel_requests": "3",
      "x-ratelimit-api_key-limit-max_parallel_requests": "5",
      "x-ratelimit-team_member-remaining-requests": "0",
      "x-ratelimit-team_member-limit-requests": "10",
      "x-ratelimit-limit-requests": "100",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "16.25s",
      "x-ratelimit-limit-tokens": "50000",
      "x-ratelimit-remaining-tokens": "1200",
      "x-ratelimit-reset-tokens": "20ms",
      "ratelimit-policy":
        '"api_key-requests";q=100;w=60, "api_key-tokens";q=10000;qu="tokens";w=60, "team-requests";q=1000;w=600, ' +
        '"team-tokens";q=50000;qu="tokens";w=600, "api_key-max_parallel_requests";q=5;qu="concurrency"',
      ratelimit:
        '"api_key-requests";r=0;t=17, "api_key-tokens";r=2500;t=18, "team-requests";r=900;t=360, ' +
        '"team-tokens";r=1200;t=1, "api_key-max_parallel_requests";r=3;t=0',
    });
  });

  it("the denial decides the OpenAI headers of its type even when another limit has less remaining", () => {
    const tokenDenial: Denial = {
      ...denial,
      type: "tokens",
      limit: 10_000,
      remaining: 2_500, // the request needed more than 2500
      resetAt: NOW + 17_250,
      retryAfterMs: 4_000,
    };
    const h = rateLimitHeaders(statuses, tokenDenial);
    expect(h["retry-after"]).toBe("4");
    expect(h["x-ratelimit-limit-tokens"]).toBe("10000");
    expect(h["x-ratelimit-remaining-tokens"]).toBe("2500");
    expect(h["x-ratelimit-reset-tokens"]).toBe("17.25s");
    expect(h["ratelimit-policy"]?.startsWith('"api_key-tokens";q=10000;qu="tokens";w=60, "api_key-requests"')).toBe(
      true,
    );
  });

  it("on an admission: no retry-after, tightest enforced limit per type, shadow limits excluded", () => {
    const ok = statuses.map((s, i) => (i === 0 ? { ...s, remaining: 42, resetAt: NOW + 17_000 } : s));
    const h = rateLimitHeaders(ok, undefined, { now: NOW });
    expect(h["retry-after"]).toBeUndefined();
    expect(h.rate_limit_type).toBeUndefined();
    expect(h["x-ratelimit-limit-requests"]).toBe("100");
    expect(h["x-ratelimit-remaining-requests"]).toBe("42");
    expect(h["x-ratelimit-reset-requests"]).toBe("17s");
    expect(h["x-ratelimit-team_member-remaining-requests"]).toBe("0");
    expect(h.ratelimit?.startsWith('"api_key-requests";r=42;t=17, ')).toBe(true);
    expect(h.ratelimit).not.toContain("team_member");
  });

  it("first status wins when two statuses share a header name", () => {
    const h = rateLimitHeaders(
      [
        status({ scope: "model_per_team", value: "t1:gpt-4o", type: "requests", limit: 10, remaining: 9 }),
        status({ scope: "model_per_team", value: "t1:gpt-4o", type: "requests", limit: 20, remaining: 1 }),
      ],
      undefined,
      { now: NOW },
    );
    expect(h["x-ratelimit-model_per_team-limit-requests"]).toBe("10");
    expect(h["x-ratelimit-model_per_team-remaining-requests"]).toBe("9");
    expect(h["ratelimit-policy"]).toBe('"model_per_team-requests";q=10');
    expect(h["x-ratelimit-remaining-requests"]).toBe("9");
  });

  it("ties on remaining keep the first status", () => {
    const h = rateLimitHeaders(
      [
        status({ scope: "user", type: "tokens", limit: 100, remaining: 5 }),
        status({ scope: "team", type: "tokens", limit: 900, remaining: 5 }),
      ],
      undefined,
      { now: NOW },
    );
    expect(h["x-ratelimit-limit-tokens"]).toBe("100");
  });

  it("writes no OpenAI or IETF header when every limit is in shadow mode", () => {
    const h = rateLimitHeaders(
      [status({ scope: "user", type: "requests", limit: 1, remaining: 0, enforced: false })],
      undefined,
      {
        now: NOW,
      },
    );
    expect(h).toEqual({ "x-ratelimit-user-remaining-requests": "0", "x-ratelimit-user-limit-requests": "1" });
  });

  it("header families can be switched off; retry-after stays on denials", () => {
    expect(rateLimitHeaders(statuses, denial, { litellm: false, openai: false, ietf: false })).toEqual({
      "retry-after": "17",
    });
    const onlyIetf = rateLimitHeaders(statuses, undefined, { now: NOW, litellm: false, openai: false });
    expect(Object.keys(onlyIetf).sort()).toEqual(["ratelimit", "ratelimit-policy"]);
  });

  it("uses denial.now as the clock on denials and options.now otherwise", () => {
    const later = rateLimitHeaders(statuses, denial, { now: NOW + 10_000 });
    expect(later["x-ratelimit-reset-requests"]).toBe("6.25s");
    expect(rateLimitHeaders(statuses, denial)["x-ratelimit-reset-requests"]).toBe("16.25s");
  });

  it("every header name is lower-case", () => {
    for (const name of Object.keys(rateLimitHeaders(statuses, denial))) expect(name).toBe(name.toLowerCase());
  });

  it.each<[string, () => unknown]>([
    ["NaN now", () => rateLimitHeaders(statuses, undefined, { now: Number.NaN })],
    ["negative retryAfterMs", () => rateLimitHeaders(statuses, { ...denial, retryAfterMs: -1 })],
    [
      "NaN resetAt",
      () =>
        rateLimitHeaders(
          [status({ scope: "user", type: "tokens", limit: 1, remaining: 1, resetAt: Number.NaN })],
          undefined,
          { now: NOW },
        ),
    ],
    [
      "NaN windowMs",
      () =>
        rateLimitHeaders(
          [status({ scope: "user", type: "tokens", limit: 1, remaining: 1, windowMs: Number.NaN })],
          undefined,
          { now: NOW },
        ),
    ],
  ])("%s -> INVALID_ARGUMENT", (_name, fn) => {
    expect(codeOf(fn)).toBe("INVALID_ARGUMENT");
  });
});
