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

-- Read phase: one MGET for every window start, value and previous value; one EXISTS for every hold key.
local a, k = 6, 1
local wins = {}
local skeys, hkeys = {}, {}
for w = 1, nw do
  local win = {
    W = tonumber(ARGV[a]),
    sliding = ARGV[a + 1] == '1',
    guarded = ARGV[a + 2] == '1',
    expect = tonumber(ARGV[a + 3]),
    wk = KEYS[k],
    counters = {},
  }
  local nc = tonumber(ARGV[a + 4])
  a = a + 5
  k = k + 1
  skeys[#skeys + 1] = win.wk
  win.si = #skeys
  for c = 1, nc do
    local ctr = { vk = KEYS[k], pk = KEYS[k + 1], hk = KEYS[k + 2], dk = KEYS[k + 3], delta = tonumber(ARGV[a]) }
    k = k + 4
    a = a + 1
    skeys[#skeys + 1] = ctr.vk
    ctr.vi = #skeys
    if win.sliding then
      skeys[#skeys + 1] = ctr.pk
      ctr.pi = #skeys
    end
    hkeys[#hkeys + 1] = ctr.hk
    hkeys[#hkeys + 1] = ctr.dk
    win.counters[c] = ctr
  end
  wins[w] = win
end

local vals = load(skeys)
local holds_in_use = any_exists(hkeys)
for w = 1, nw do
  local win = wins[w]
  local stored = int(win.wk, vals[win.si])
  local start, kind = roll(stored, win.W, win.sliding, now)
  win.start, win.kind = start, kind
  win.applied = true
  if win.guarded then win.applied = stored ~= nil and kind == 0 and stored == win.expect end
  for _, ctr in ipairs(win.counters) do
    local v = count(ctr.vk, vals[ctr.vi])
    local p = 0
    if win.sliding then p = count(ctr.pk, vals[ctr.pi]) end
    if kind == 1 then
      v, p = 0, 0
    elseif kind == 2 then
      v, p = 0, v
    end
    ctr.value, ctr.prev = v, p
    ctr.held, ctr.mine = 0, 0
    if holds_in_use and call('EXISTS', ctr.hk, ctr.dk) > 0 then
      ctr.held, ctr.mine = held_pruned(ctr.hk, ctr.dk, now, id)
    end
  end
end

-- Type-check and prune the release keys too, still before the first write.
local rk = k
for g = 1, nrg do
  call('ZREMRANGEBYSCORE', KEYS[rk], '-inf', fmt(now))
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
    released = released + call('ZREM', KEYS[k], id)
    k = k + 1
  end
  for h = 1, nrh do
    if call('ZREM', KEYS[k], id) == 1 then
      call('HDEL', KEYS[k + 1], id)
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
  if win.applied and win.kind ~= 0 then call('SET', win.wk, fmt(win.start), 'PX', fmt(px)) end
  for _, ctr in ipairs(win.counters) do
    local nv = ctr.value
    if win.applied then
      nv = nv + ctr.delta
      if nv < 0 then nv = 0 end
      if win.kind ~= 0 or nv ~= ctr.value then call('SET', ctr.vk, fmt(nv), 'PX', fmt(px)) end
      if win.sliding and win.kind ~= 0 then call('SET', ctr.pk, fmt(ctr.prev), 'PX', fmt(px)) end
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
