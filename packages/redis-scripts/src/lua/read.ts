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
local wins, skeys, hkeys = {}, {}, {}

for w = 1, nw do
  local win = { W = tonumber(ARGV[a]), sliding = ARGV[a + 1] == '1', wk = KEYS[k], counters = {} }
  local nc = tonumber(ARGV[a + 2])
  a = a + 3
  k = k + 1
  skeys[#skeys + 1] = win.wk
  win.si = #skeys
  for c = 1, nc do
    local ctr = { vk = KEYS[k], pk = KEYS[k + 1], hk = KEYS[k + 2], dk = KEYS[k + 3] }
    k = k + 4
    skeys[#skeys + 1] = ctr.vk
    ctr.vi = #skeys
    if win.sliding then
      skeys[#skeys + 1] = ctr.pk
      ctr.pi = #skeys
    end
    hkeys[#hkeys + 1] = ctr.hk
    win.counters[c] = ctr
  end
  wins[w] = win
end

local vals = load(skeys)
local holds_in_use = any_exists(hkeys)
for _, win in ipairs(wins) do
  local start, kind = roll(int(win.wk, vals[win.si]), win.W, win.sliding, now)
  out[#out + 1] = start
  for _, ctr in ipairs(win.counters) do
    local v = count(ctr.vk, vals[ctr.vi])
    local p = 0
    if win.sliding then p = count(ctr.pk, vals[ctr.pi]) end
    if kind == 1 then
      v, p = 0, 0
    elseif kind == 2 then
      v, p = 0, v
    end
    out[#out + 1] = v
    out[#out + 1] = p
    if holds_in_use then out[#out + 1] = held_live(ctr.hk, ctr.dk, now) else out[#out + 1] = 0 end
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
