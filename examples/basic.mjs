// A runnable tour of the engine on the memory store: a team of three keys sharing limits, token reservation,
// settle, a denial with LiteLLM's 429 text and the response headers. Run: pnpm example
import { createLimiter, estimateRequestTokens, formatRateLimitMessage, rateLimitHeaders, scopes } from "@tollgate/core";
import { createMemoryStore } from "@tollgate/store-memory";

const limiter = createLimiter({ store: createMemoryStore() });

const team = scopes.team("team_research", { requests: 5, tokens: 4_000 });
const request = {
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Summarise the plot of Hamlet in three sentences." }],
  max_tokens: 300,
};
const estimate = estimateRequestTokens(request, { minTpmLimit: 4_000 });
console.log(`estimated tokens to reserve: ${estimate.total} (input ${estimate.input}, output ${estimate.output})`);

for (let i = 1; i <= 7; i++) {
  const key = scopes.apiKey(`sk-hash-${i % 3}`, { requests: 100, maxParallel: 2 });
  const admission = await limiter.admit([key, team], { tokens: estimate.total });
  if (admission.ok) {
    const actual = 120 + i; // what the provider reported in usage
    await admission.reservation.settle({ tokens: actual });
    const teamTokens = admission.statuses.find((s) => s.scope === "team" && s.type === "tokens");
    console.log(`request ${i}: admitted, team tokens remaining after reservation ${teamTokens?.remaining}`);
  } else {
    console.log(`request ${i}: 429 ${formatRateLimitMessage(admission.denial)}`);
    const headers = rateLimitHeaders(admission.statuses, admission.denial);
    console.log("  headers:", JSON.stringify(headers));
  }
}
