import { PRELUDE } from "./prelude.js";

/**
 * `read`: the states `admit` would answer, without writing anything (docs/store-contract.md, "read").
 * Expired or absent windows read as zero with start = now; expired holds and gauge entries are skipped.
 *
 * KEYS, in order:
 * - per window: `P{base}:window`, then per counter four keys `P{base}:<name>`, `...:<name>:prev`,
 *   `...:<name>:holds`, `...:<name>:held` (as in `admit`)
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
local a, k = 4, 1
local out = { now }

for w = 1, nw do
  local W = tonumber(ARGV[a])
  local sliding = ARGV[a + 1] == '1'
  local nc = tonumber(ARGV[a + 2])
  a = a + 3
  local wk = KEYS[k]
  k = k + 1
  local start, kind = roll(int(wk, redis.call('GET', wk)), W, sliding, now)
  out[#out + 1] = start
  for c = 1, nc do
    local vk, pk, hk, dk = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
    k = k + 4
    local v = count(vk, redis.call('GET', vk))
    local p = 0
    if sliding then p = count(pk, redis.call('GET', pk)) end
    if kind == 1 then
      v, p = 0, 0
    elseif kind == 2 then
      v, p = 0, v
    end
    out[#out + 1] = v
    out[#out + 1] = p
    out[#out + 1] = held_live(hk, dk, now)
  end
end

for g = 1, ng do
  local gk = KEYS[k]
  k = k + 1
  local live = redis.call('ZCOUNT', gk, '(' .. fmt(now), '+inf')
  local first = redis.call('ZRANGEBYSCORE', gk, '(' .. fmt(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  out[#out + 1] = live
  if first[2] then out[#out + 1] = tonumber(first[2]) else out[#out + 1] = -1 end
end

return out
`;
