import { PRELUDE } from "./prelude.js";

/**
 * `read`: the states `admit` would answer, without writing anything (docs/store-contract.md, "read").
 * Expired or absent windows read as zero with start = now; expired holds and gauge entries are skipped.
 *
 * KEYS, in order:
 * - per window: `P{base}:window`, then per counter `P{base}:<name>`, `...:<name>:prev` (sliding windows
 *   only), `...:<name>:holds`, `...:<name>:held` (as in `admit`)
 * - per gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 *
 * ARGV:
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` number of windows, `ARGV[3]` number of gauges
 * - per window: windowMs, sliding (`1`/`0`), number of counters
 *
 * Reply (flat integer array): now, then per window: start, then per counter: value, previous, held;
 * then per gauge: inFlight, earliest expiry (-1 = none).
 */
export const READ_LUA = `${PRELUDE}
local now = clock(ARGV[1])
local nw = tonumber(ARGV[2])
local ng = tonumber(ARGV[3])

-- Layout pass (see layout in the prelude); gauge keys follow the window keys, from KEYS[k].
local wk, _, wn, ww, wsl, skeys, hkeys, k = layout(nw, 4, 2, 3, 0)

local vals = load(skeys)
local holds_in_use = any_exists(hkeys)
local out = { now }
local si = 1
for w = 1, nw do
  local W, sliding = ww[w], wsl[w]
  local start, kind = roll(int(KEYS[wk[w]], vals[si]), W, sliding, now)
  si = si + 1
  out[#out + 1] = start
  local st = stride(sliding)
  for kk = wk[w] + 1, wk[w] + st * wn[w], st do
    local v, p
    v, p, si = counter_values(kk, vals, si, sliding, kind)
    out[#out + 1] = v
    out[#out + 1] = p
    if holds_in_use then out[#out + 1] = held_live(KEYS[kk + st - 2], KEYS[kk + st - 1], now) else out[#out + 1] = 0 end
  end
end

for g = 1, ng do
  local gk = KEYS[k]
  k = k + 1
  local live = call('ZCOUNT', gk, '(' .. fmt(now), '+inf')
  local first = call('ZRANGEBYSCORE', gk, '(' .. fmt(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  out[#out + 1] = live
  if first[2] then out[#out + 1] = tonumber(first[2]) else out[#out + 1] = -1 end
end

return out
`;
