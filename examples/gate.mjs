// A runnable tour of @tollgate/gate on the memory store: one admission per request over rate limits (requests,
// tokens, in-flight) and USD budgets, then settle, fail and release, each one store call, exactly once.
// Run: pnpm example:gate
import { formatUsd } from "@tollgate/budgets";
import { estimateRequestTokens, scopes } from "@tollgate/core";
import { createGate } from "@tollgate/gate";
import { createMemoryStore } from "@tollgate/store-memory";

const gate = createGate({
  store: createMemoryStore(),
  budgets: {
    // your price table (LiteLLM's field names); the default table covers the common models
    prices: { "my-model": { input_cost_per_token: "0.000001", output_cost_per_token: "0.000002" } },
    sink: { write: (record) => console.log(`  ledger: ${record.requestId} cost $${record.costUsd}`) },
  },
});

const body = { model: "my-model", messages: [{ role: "user", content: "Hello there!".repeat(50) }], max_tokens: 200 };
const estimate = estimateRequestTokens(body); // { input, output, total }
const request = (n) => ({
  id: `call-${n}`,
  limits: [
    scopes.apiKey("hashed-key-1", { requests: 100, tokens: 50_000, maxParallel: 2 }),
    scopes.team("team-research", { requests: 1_000, tokens: 500_000 }),
  ],
  tokens: estimate,
  model: body.model,
  maxTokens: body.max_tokens,
  budgets: [
    { scope: "key", id: "hashed-key-1", maxBudget: "0.0018", duration: "1d" },
    { scope: "team", id: "team-research", maxBudget: "100", duration: "1mo" },
  ],
});

for (let n = 1; n <= 6; n++) {
  const a = await gate.admit(request(n));
  if (!a.ok) {
    console.log(
      `call ${n}: denied by ${a.reason === "budget" ? `the ${a.denial.budget.scope} budget` : `${a.denial.scope} ${a.denial.type}`}`,
    );
    continue;
  }
  const held = formatUsd(a.ticket.reservedCost);
  console.log(
    `call ${n}: admitted, $${held} held on each budget, ${a.ticket.tokens.input + a.ticket.tokens.output} tokens reserved`,
  );
  if (n === 2) {
    console.log("  the provider failed:", (await a.ticket.fail()).status); // the request counts, the rest comes back
  } else if (n === 3) {
    console.log("  never sent upstream:", (await a.ticket.release()).status); // as if it never happened
  } else {
    const outcome = await a.ticket.settle({ inputTokens: estimate.input, outputTokens: 150 });
    console.log(`  settled: ${outcome.status}, cost $${outcome.status === "applied" ? formatUsd(outcome.cost) : "-"}`);
    console.log("  settled again:", (await a.ticket.settle({ inputTokens: 1, outputTokens: 1 })).status);
  }
}
