import { PRELUDE } from "./prelude.js";

/**
 * `adjust`: window-guarded deltas plus an optional lease release, atomically
 * (docs/store-contract.md, "adjust"). The release runs first, so the answered `held` reflects it.
 *
 * KEYS, in order:
 * - per window w: `P{base}:window`, then per counter four keys `P{base}:<name>`, `...:<name>:prev`,
 *   `...:<name>:holds`, `...:<name>:held` (as in `admit`)
 * - per released gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 * - per released hold: `P{base}:<name>:holds`, `P{base}:<name>:held`
 *
 * ARGV:
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` lease id to release (`""` for none)
 * - `ARGV[3]` number of windows, `ARGV[4]` number of released gauges, `ARGV[5]` number of released holds
 * - per window: windowMs, sliding (`1`/`0`), has guard (`1`/`0`), expected start (ms, 0 without guard),
 *   number of counters, then one signed delta per counter
 *
 * Reply (flat integer array): now, released count, then per window: applied (1/0), start, then per
 * counter: value, previous, held (after the call).
 *
 * Semantics: with a guard, deltas apply only when the stored window is current and starts at the expected
 * time (nothing is written otherwise); without one, the window rolls as in `admit` and the deltas apply.
 * Values never go below 0. Errors as in `admit`.
 */
export const ADJUST_LUA = `${PRELUDE}
local now = clock(ARGV[1])
local id = ARGV[2]
local nw = tonumber(ARGV[3])
local nrg = tonumber(ARGV[4])
local nrh = tonumber(ARGV[5])

-- Count the window keys first so the release keys can be found.
local a, k = 6, 1
for w = 1, nw do
  local nc = tonumber(ARGV[a + 4])
  a = a + 5 + nc
  k = k + 1 + 4 * nc
end

-- Validate every window and counter before the first write.
local wins = {}
a = 6
local wkIndex = 1
for w = 1, nw do
  local W = tonumber(ARGV[a])
  local sliding = ARGV[a + 1] == '1'
  local guarded = ARGV[a + 2] == '1'
  local expect = tonumber(ARGV[a + 3])
  local nc = tonumber(ARGV[a + 4])
  a = a + 5
  local wk = KEYS[wkIndex]
  local stored = int(wk, redis.call('GET', wk))
  local start, kind = roll(stored, W, sliding, now)
  local applied = true
  if guarded then applied = stored ~= nil and kind == 0 and stored == expect end
  local cs = {}
  for c = 1, nc do
    local j = wkIndex + 1 + 4 * (c - 1)
    local ctr = { vk = KEYS[j], pk = KEYS[j + 1], hk = KEYS[j + 2], dk = KEYS[j + 3], delta = tonumber(ARGV[a]) }
    a = a + 1
    local v = count(ctr.vk, redis.call('GET', ctr.vk))
    local p = 0
    if sliding then p = count(ctr.pk, redis.call('GET', ctr.pk)) end
    if kind == 1 then
      v, p = 0, 0
    elseif kind == 2 then
      v, p = 0, v
    end
    ctr.value, ctr.prev = v, p
    ctr.held, ctr.mine = held_pruned(ctr.hk, ctr.dk, now, id)
    cs[c] = ctr
  end
  wins[w] = { wk = wk, W = W, sliding = sliding, start = start, kind = kind, applied = applied, counters = cs }
  wkIndex = wkIndex + 1 + 4 * nc
end

-- Type-check and prune the release keys too, still before the first write.
local rk = k
for g = 1, nrg do
  redis.call('ZREMRANGEBYSCORE', KEYS[rk], '-inf', fmt(now))
  rk = rk + 1
end
for h = 1, nrh do
  held_pruned(KEYS[rk], KEYS[rk + 1], now, id)
  rk = rk + 2
end

local released = 0
local freed = {}
if id ~= '' then
  for g = 1, nrg do
    released = released + redis.call('ZREM', KEYS[k], id)
    k = k + 1
  end
  for h = 1, nrh do
    if redis.call('ZREM', KEYS[k], id) == 1 then
      redis.call('HDEL', KEYS[k + 1], id)
      released = released + 1
      freed[KEYS[k]] = true
    end
    k = k + 2
  end
end

local out = { now, released }
for w = 1, nw do
  local win = wins[w]
  local span = win.W
  if win.sliding then span = 2 * win.W end
  local px = win.start + span - now
  if px < 1 then px = 1 end
  out[#out + 1] = win.applied and 1 or 0
  out[#out + 1] = win.start
  if win.applied and win.kind ~= 0 then redis.call('SET', win.wk, fmt(win.start), 'PX', fmt(px)) end
  for _, ctr in ipairs(win.counters) do
    local nv = ctr.value
    if win.applied then
      nv = nv + ctr.delta
      if nv < 0 then nv = 0 end
      if win.kind ~= 0 or nv ~= ctr.value then redis.call('SET', ctr.vk, fmt(nv), 'PX', fmt(px)) end
      if win.sliding and win.kind ~= 0 then redis.call('SET', ctr.pk, fmt(ctr.prev), 'PX', fmt(px)) end
    end
    local held = ctr.held
    if freed[ctr.hk] then held = held - ctr.mine end
    out[#out + 1] = nv
    out[#out + 1] = ctr.prev
    out[#out + 1] = held
  end
end

return out
`;
