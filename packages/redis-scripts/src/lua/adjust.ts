import { PRELUDE } from "./prelude.js";

/**
 * `adjust`: window-guarded deltas plus an optional lease release, atomically
 * (docs/store-contract.md, "adjust"). The release runs first, so the answered `held` reflects it.
 *
 * KEYS, in order:
 * - per window w: `P{base}:window`, then per counter `P{base}:<name>`, `...:<name>:prev` (sliding windows
 *   only), `...:<name>:holds`, `...:<name>:held` (as in `admit`; the two hold keys only with read-back)
 * - per released gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 * - per released hold: `P{base}:<name>:holds`, `P{base}:<name>:held`
 *
 * ARGV:
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` lease id to release (`""` for none)
 * - `ARGV[3]` number of windows, `ARGV[4]` number of released gauges, `ARGV[5]` number of released holds
 * - `ARGV[6]` read-back (`1`: answer the states after the call; `0`: answer only now, released and applied, and
 *   take no hold keys for the adjusted counters)
 * - per window: windowMs, sliding (`1`/`0`), has guard (`1`/`0`), expected start (ms, 0 without guard),
 *   number of counters, then one signed delta per counter
 *
 * Reply (flat integer array): now, released count, then per window: applied (1/0), start, then per
 * counter: value, previous, held (after the call). Without read-back: now, released count, then applied (1/0)
 * per window.
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
local read_back = ARGV[6] == '1'

-- Layout pass (see layout in the prelude); release keys follow the window keys, from KEYS[k].
local wk, wa, wn, ww, wsl, skeys, hkeys, k = layout(nw, 7, 4, 5, 1, read_back)

-- Read phase, validating everything before the first write. The reply is built as the state is read (applied,
-- start, then value, previous, held per counter: the state before the call); the write phase updates it. Per
-- window, its roll kind; per counter, the amount this lease holds (only when some counter has holds).
local vals = load(skeys)
local holds_in_use = any_exists(hkeys)
local out = { now, 0 }
local kinds, mine = {}, {}
-- Only when holds are released: holds key -> held key of every counter read here. read_counter pruned (and
-- type-checked) the pair, or found that neither key exists, so the release below need not prune it again.
local checked
if nrh > 0 then checked = {} end
local si, o, n = 1, 2, 0
for w = 1, nw do
  local W, sliding, wa_ = ww[w], wsl[w], wa[w]
  local stored = int(KEYS[wk[w]], vals[si])
  si = si + 1
  local start, kind = roll(stored, W, sliding, now)
  kinds[w] = kind
  local ok = ARGV[wa_ + 2] ~= '1' or (stored ~= nil and kind == 0 and stored == tonumber(ARGV[wa_ + 3]))
  out[o + 1], out[o + 2] = ok and 1 or 0, start
  o = o + 2
  local st = stride(sliding, read_back)
  local kk = wk[w] + 1
  for _ = 1, wn[w] do
    local v, p, h, m, _
    v, p, h, m, _, si = read_counter(kk, st, vals, si, sliding, kind, holds_in_use, now, id)
    out[o + 1], out[o + 2], out[o + 3] = v, p, h
    o, n = o + 3, n + 1
    if m > 0 then mine[n] = m end
    if checked and read_back then checked[KEYS[kk + st - 2]] = KEYS[kk + st - 1] end
    kk = kk + st
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

out[2] = released
si, o, n = 1, 2, 0
for w = 1, nw do
  local W, sliding = ww[w], wsl[w]
  local ok, start, kind = out[o + 1] == 1, out[o + 2], kinds[w]
  o = o + 2
  si = si + 1
  -- The keys' TTL as a string, computed when first needed.
  local px
  if ok and kind ~= 0 then
    px = fmt(window_ttl(start, W, sliding, now))
    call('SET', KEYS[wk[w]], fmt(start), 'PX', px)
  end
  local st = stride(sliding, read_back)
  local kk, da = wk[w] + 1, wa[w] + 5
  for c = 0, wn[w] - 1 do
    n = n + 1
    local value = out[o + 1]
    if ok then
      local nv = value + tonumber(ARGV[da + c])
      if nv < 0 then nv = 0 end
      if kind ~= 0 or not vals[si] then
        px = px or fmt(window_ttl(start, W, sliding, now))
        call('SET', KEYS[kk], fmt(nv), 'PX', px)
        if sliding and kind ~= 0 then call('SET', KEYS[kk + 1], fmt(out[o + 2]), 'PX', px) end
      elseif nv ~= value then
        -- Current window: keep the key's TTL.
        if nv == 0 then
          call('SET', KEYS[kk], '0', 'KEEPTTL')
        else
          call('INCRBY', KEYS[kk], ARGV[da + c])
        end
      end
      out[o + 1] = nv
    end
    if read_back and freed[KEYS[kk + st - 2]] then out[o + 3] = out[o + 3] - (mine[n] or 0) end
    if sliding then si = si + 2 else si = si + 1 end
    o, kk = o + 3, kk + st
  end
end

if read_back then return out end
-- Without read-back: now, released, and applied per window.
local short = { now, released }
o = 2
for w = 1, nw do
  short[w + 2] = out[o + 1]
  o = o + 2 + 3 * wn[w]
end
return short
`;
