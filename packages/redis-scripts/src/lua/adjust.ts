import { PRELUDE } from "./prelude.js";

/**
 * `adjust`: window-guarded deltas plus an optional lease release, atomically
 * (docs/store-contract.md, "adjust"). The release runs first, so the answered `held` reflects it.
 *
 * KEYS, in order:
 * - per window w: `P{base}:window`, then per counter `P{base}:<name>`, `...:<name>:prev` (sliding windows
 *   only), `...:<name>:holds`, `...:<name>:held` (as in `admit`)
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

-- Layout pass (see admit): window w's keys start at KEYS[wk[w]], its arguments at ARGV[wa[w]].
local wk, wa, wn = {}, {}, {}
local skeys, hkeys = {}, {}
local a, k = 6, 1
for w = 1, nw do
  local nc = tonumber(ARGV[a + 4])
  local sliding = ARGV[a + 1] == '1'
  wk[w], wa[w], wn[w] = k, a, nc
  k = window_keys(k, nc, sliding, skeys, hkeys)
  a = a + 5 + nc
end

-- Read phase, validating everything before the first write.
local vals = load(skeys)
local holds_in_use = any_exists(hkeys)
local starts, kinds, applied = {}, {}, {}
local value, prev, held, mine, existed = {}, {}, {}, {}, {}
-- Holds key -> held key of every counter read here: read_counter pruned (and type-checked) the pair, or found
-- that neither key exists, so the release below need not prune it again.
local checked = {}
local si, n = 1, 0
for w = 1, nw do
  local W = tonumber(ARGV[wa[w]])
  local sliding = ARGV[wa[w] + 1] == '1'
  local stored = int(KEYS[wk[w]], vals[si])
  si = si + 1
  local start, kind = roll(stored, W, sliding, now)
  starts[w], kinds[w] = start, kind
  applied[w] = true
  if ARGV[wa[w] + 2] == '1' then applied[w] = stored ~= nil and kind == 0 and stored == tonumber(ARGV[wa[w] + 3]) end
  for c = 0, wn[w] - 1 do
    n = n + 1
    local kk = wk[w] + 1 + stride(sliding) * c
    local hk = kk + stride(sliding) - 2
    local v, p, h, m
    v, p, h, m, existed[n], si = read_counter(kk, vals, si, sliding, kind, holds_in_use, now, id)
    value[n], prev[n], held[n], mine[n] = v, p, h, m
    checked[KEYS[hk]] = KEYS[hk + 1]
  end
end

-- Type-check and prune the release keys the read phase did not, still before the first write.
local rk = k
for g = 1, nrg do
  call('ZREMRANGEBYSCORE', KEYS[rk], '-inf', fmt(now))
  rk = rk + 1
end
for h = 1, nrh do
  if checked[KEYS[rk]] ~= KEYS[rk + 1] then held_pruned(KEYS[rk], KEYS[rk + 1], now, id) end
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
n = 0
for w = 1, nw do
  local W = tonumber(ARGV[wa[w]])
  local sliding = ARGV[wa[w] + 1] == '1'
  local start, kind = starts[w], kinds[w]
  local px = window_ttl(start, W, sliding, now)
  out[#out + 1] = applied[w] and 1 or 0
  out[#out + 1] = start
  if applied[w] and kind ~= 0 then call('SET', KEYS[wk[w]], fmt(start), 'PX', fmt(px)) end
  for c = 0, wn[w] - 1 do
    n = n + 1
    local kk = wk[w] + 1 + stride(sliding) * c
    local nv = value[n]
    if applied[w] then
      local delta = tonumber(ARGV[wa[w] + 5 + c])
      nv = nv + delta
      if nv < 0 then nv = 0 end
      if kind ~= 0 or not existed[n] then
        call('SET', KEYS[kk], fmt(nv), 'PX', fmt(px))
        if sliding and kind ~= 0 then call('SET', KEYS[kk + 1], fmt(prev[n]), 'PX', fmt(px)) end
      elseif nv ~= value[n] then
        -- Current window: keep the key's TTL.
        if nv == 0 then
          call('SET', KEYS[kk], '0', 'KEEPTTL')
        else
          call('INCRBY', KEYS[kk], ARGV[wa[w] + 5 + c])
        end
      end
    end
    local h = held[n]
    if freed[KEYS[kk + stride(sliding) - 2]] then h = h - mine[n] end
    out[#out + 1] = nv
    out[#out + 1] = prev[n]
    out[#out + 1] = h
  end
end

return out
`;
