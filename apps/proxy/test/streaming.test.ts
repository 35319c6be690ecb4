/**
 * SSE streaming through the proxy process with the openai client: chunk-by-chunk passthrough, include_usage
 * injection and stripping, settles from the final usage, client disconnects, upstream errors mid-stream, and the
 * mid-stream cutoff.
 */
import { type OpenAIUpstream, type ProxyProcess, startOpenAIUpstream, startProxyProcess } from "@tollgate/test-servers";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chat, client, eventually, MASTER, status } from "./helpers.js";

let upstream: OpenAIUpstream;
let proxy: ProxyProcess;
let openai: OpenAI;

const IN = 0.000001; // USD per input token
const OUT = 0.00001; // USD per output token

beforeAll(async () => {
  upstream = await startOpenAIUpstream();
  proxy = await startProxyProcess({
    config: `
model_list:
  - model_name: s
    litellm_params:
      model: openai/s
      api_base: ${upstream.apiBase}
      rpm: 100000
      tpm: 100000000
      input_cost_per_token: ${IN}
      output_cost_per_token: ${OUT}
  - model_name: tight
    litellm_params: { model: openai/tight, api_base: ${upstream.apiBase}, tpm: 100 }
litellm_settings:
  max_budget: 1000
  budget_duration: 1d
  max_end_user_budget: 0.0001
general_settings:
  master_key: ${MASTER}
`,
  });
  openai = client(proxy.url);
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
});

async function usage(model = "s") {
  const s = await status(proxy.url);
  const lim = s.deployments.find((d: { model_name: string }) => d.model_name === model).limits;
  return {
    requests: (lim.find((l: { type: string }) => l.type === "requests")?.used ?? 0) as number,
    tokens: (lim.find((l: { type: string }) => l.type === "tokens")?.used ?? 0) as number,
    spend: s.budgets[0].spend as number,
    reserved: s.budgets[0].reserved as number,
    inflight: s.inflight as number,
  };
}

/** Waits until every call finished (tickets settled) and returns the counters. */
async function settled() {
  let u = await usage();
  await eventually(async () => {
    u = await usage();
    expect(u.inflight).toBe(0);
    expect(u.reserved).toBe(0);
  });
  return u;
}

const nano = (usd: number) => Math.round(usd * 1e9);
const PROMPT = "Stream me something please"; // 26 chars → the proxy estimates 6 input tokens

describe("streaming", () => {
  it("passes chunks through one by one, injects include_usage upstream and strips the usage chunk", async () => {
    const before = await settled();
    upstream.reset();
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      x_test: { chunkDelayMs: 40 },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    let upstreamDoneAtFirstContent: number | undefined;
    for await (const c of stream) {
      if (upstreamDoneAtFirstContent === undefined && c.choices[0]?.delta.content) {
        upstreamDoneAtFirstContent = upstream.stats.completed;
      }
      chunks.push(c);
    }
    // the first content reached the client while the upstream was still streaming: nothing was buffered whole
    expect(upstreamDoneAtFirstContent).toBe(0);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe("Hello from the test upstream. It answers deterministically.");
    expect(chunks.every((c) => c.usage === undefined || c.usage === null)).toBe(true);
    expect(chunks.some((c) => c.choices.length === 0)).toBe(false);
    expect(upstream.bodies.at(-1)!.stream_options).toEqual({ include_usage: true });
    const after = await settled();
    expect(after.requests - before.requests).toBe(1);
    // settled with the upstream's final usage: prompt 6 (its own count) + 8 completion tokens
    expect(after.tokens - before.tokens).toBe(6 + 8);
    expect(after.spend - before.spend).toBe(nano(6 * IN + 8 * OUT));
    const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
    const spend = Number(/tollgate_budget_spend_usd\{scope="global",id="proxy"\} (\S+)/.exec(metrics)![1]);
    const left = Number(/tollgate_budget_remaining_usd\{scope="global",id="proxy"\} (\S+)/.exec(metrics)![1]);
    expect(spend).toBeCloseTo(after.spend / 1e9, 9);
    expect(left).toBeCloseTo(1000 - after.spend / 1e9, 6);
  });

  it("keeps the usage chunk when the client asked for it", async () => {
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 6, completion_tokens: 8, total_tokens: 14 });
  });

  it("settles the streamed tokens when the upstream sends no usage", async () => {
    const before = await settled();
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      x_test: { noUsage: true },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    for await (const _ of stream) {
      // drain
    }
    const after = await settled();
    expect(after.tokens - before.tokens).toBe(6 + 8); // input estimate 6 + 8 content chunks counted
    expect(after.spend - before.spend).toBe(nano(6 * IN + 8 * OUT));
  });

  it("a client disconnect mid-stream aborts the upstream call and settles what was streamed", async () => {
    const before = await settled();
    upstream.reset();
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      x_test: { tokens: 200, chunkDelayMs: 30 },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    let n = 0;
    for await (const c of stream) {
      if (c.choices[0]?.delta.content) n++;
      if (n === 3) break; // the openai client aborts the request
    }
    await eventually(() => expect(upstream.stats.aborted).toBe(1));
    const after = await settled();
    const streamed = after.tokens - before.tokens - 6;
    expect(streamed).toBeGreaterThanOrEqual(3);
    expect(streamed).toBeLessThan(200);
    expect(after.spend - before.spend).toBe(nano(6 * IN + streamed * OUT));
    expect(after.requests - before.requests).toBe(1);
  });

  it("an upstream that breaks mid-stream becomes an error frame; the request fails with the streamed usage", async () => {
    const before = await settled();
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      x_test: { dropAfterChunks: 3 },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    let n = 0;
    const err = await (async () => {
      for await (const c of stream) if (c.choices[0]?.delta.content) n++;
    })().catch((e) => e);
    expect(n).toBe(3);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String(err.message)).toMatch(/Upstream connection error|error/i);
    const after = await settled();
    expect(after.requests - before.requests).toBe(1);
    expect(after.tokens - before.tokens).toBe(6 + 3);
    expect(after.spend - before.spend).toBe(nano(6 * IN + 3 * OUT));
  });

  it("an upstream error frame passes through to the client", async () => {
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      x_test: { errorFrameAfterChunks: 2 },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    const err = await (async () => {
      for await (const _ of stream) {
        // drain
      }
    })().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(String(err.message)).toContain("test upstream failed mid-stream");
    await settled();
  });
});

describe("mid-stream cutoff", () => {
  it("ends a stream that runs past max_tokens with finish_reason length and charges exactly max_tokens", async () => {
    const before = await settled();
    upstream.reset();
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      stream: true,
      max_tokens: 5,
      stream_options: { include_usage: true },
      x_test: { tokens: 40, ignoreMaxTokens: true, chunkDelayMs: 5 },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    const content = chunks.filter((c) => c.choices[0]?.delta.content);
    expect(content).toHaveLength(5);
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish?.choices[0]?.finish_reason).toBe("length");
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 6, completion_tokens: 5 });
    const after = await settled();
    expect(after.tokens - before.tokens).toBe(6 + 5);
    expect(after.spend - before.spend).toBe(nano(6 * IN + 5 * OUT));
    await eventually(() => expect(upstream.stats.aborted).toBe(1));
  });

  it("lowers max_tokens to what the end user's budget allows, and cuts an upstream that ignores it", async () => {
    // $0.0001 end-user budget: 6 input tokens cost $0.000006, each output token $0.00001 → 9 output tokens fit
    const stream = await openai.chat.completions.create({
      model: "s",
      ...chat(PROMPT),
      user: "eve",
      stream: true,
      x_test: { tokens: 40, ignoreMaxTokens: true },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(upstream.bodies.at(-1)!.max_tokens).toBe(9);
    expect(chunks.filter((c) => c.choices[0]?.delta.content)).toHaveLength(9);
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe("length");
    await settled();
    const eve = (await status(proxy.url, "eve")).budgets.find(
      (b: { budget: { scope: string } }) => b.budget.scope === "end_user",
    );
    expect(eve.spend).toBe(nano(6 * IN + 9 * OUT));
    expect(eve.spend).toBeLessThanOrEqual(eve.max);
    expect(eve.reserved).toBe(0);
    // the budget is now nearly spent: the next request does not fit even one output token
    const denied = await openai.chat.completions.create({ model: "s", ...chat(PROMPT), user: "eve" }).catch((e) => e);
    expect(denied).toBeInstanceOf(OpenAI.BadRequestError);
    expect(denied.error.type).toBe("budget_exceeded");
    expect(denied.message).toContain("ExceededBudget: End User=eve over budget");
  });

  it("lowers max_tokens to what a token limit has left (deployment tpm), and cuts an upstream that ignores it", async () => {
    // tpm 100, no max_tokens: LiteLLM's small-TPM rule caps the output at tpm / 4 = 25 → 6 + 25 tokens
    await openai.chat.completions.create({ model: "tight", ...chat(PROMPT), x_test: { tokens: 200 } } as never);
    expect(upstream.bodies.at(-1)!.max_tokens).toBe(25);
    const before = await usage("tight");
    expect(before.tokens).toBe(31);
    // 69 tokens left: max_tokens 100 does not fit, 69 - 6 prompt = 63 do
    const stream = await openai.chat.completions.create({
      model: "tight",
      ...chat(PROMPT),
      max_tokens: 100,
      stream: true,
      x_test: { tokens: 200, ignoreMaxTokens: true },
    } as never as OpenAI.ChatCompletionCreateParamsStreaming);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(upstream.bodies.at(-1)!.max_tokens).toBe(63);
    expect(chunks.filter((c) => c.choices[0]?.delta.content)).toHaveLength(63);
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe("length");
    await eventually(async () => expect((await usage("tight")).tokens).toBe(100));
    const limited = await openai.chat.completions.create({ model: "tight", ...chat(PROMPT) }).catch((e) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
  });
});
