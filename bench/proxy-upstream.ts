/**
 * The mock upstream of `pnpm bench proxy`, as its own process: the test tooling's OpenAI-compatible server with a fixed
 * 349-byte chat completion (no JSON work per request) and normal SSE streaming. Prints `PORT <n>` when listening.
 */
import { startOpenAIUpstream } from "../tooling/test-servers/src/openai-upstream.js";

/** A chat completion of exactly 349 bytes (the reference measurement). */
export const FIXED_COMPLETION = (() => {
  const base = {
    id: "chatcmpl-bench",
    object: "chat.completion",
    created: 1700000000,
    model: "bench-model",
    choices: [{ index: 0, message: { role: "assistant", content: "" }, finish_reason: "stop" }],
    usage: { prompt_tokens: 12, completion_tokens: 24, total_tokens: 36 },
  };
  const empty = JSON.stringify(base).length;
  base.choices[0]!.message.content = "x".repeat(349 - empty);
  return JSON.stringify(base);
})();

if (process.argv[1]?.endsWith("proxy-upstream.ts")) {
  const u = await startOpenAIUpstream({ fixedResponse: FIXED_COMPLETION });
  process.stdout.write(`PORT ${u.port}\n`);
}
