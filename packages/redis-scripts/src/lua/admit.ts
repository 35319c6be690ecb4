import { PRELUDE } from "./prelude.js";

/**
 * `admit`: the whole admission of one batch (docs/store-contract.md, "admit"), all-or-nothing.
 *
 * KEYS, in order, for each window w (then for each gauge):
 * - `KEYS[k]`      `P{base}:window`       window start (integer ms)
 * - per counter c of w, four keys (three in a fixed window, which has no `:prev`):
 *   - `P{base}:<name>`        committed value (integer)
 *   - `P{base}:<name>:prev`   previous window's value (sliding windows only)
 *   - `P{base}:<name>:holds`  sorted set lease id -> expiry ms
 *   - `P{base}:<name>:held`   hash lease id -> held amount
 * - per gauge g: `P{base}:<name>` sorted set lease id -> expiry ms
 *
 * ARGV:
 * - `ARGV[1]` test clock in ms replacing server TIME (`""` in production; tests inject time with it)
 * - `ARGV[2]` lease id (`""` when the batch has no lease)
 * - `ARGV[3]` lease TTL in ms (0 when no lease)
 * - `ARGV[4]` number of windows, `ARGV[5]` number of gauges
 * - per window: windowMs, sliding (`1`/`0`), number of counters, then per counter:
 *   limit, amount, hold, enforce (`1`/`0`)
 * - per gauge: limit, enforce (`1`/`0`)
 *
 * Reply (flat integer array): admitted (1/0), now, denied kind (0 none, 1 counter, 2 gauge),
 * denied index a (window or gauge, 0-based), denied index b (counter, 0-based), then per window:
 * start, then per counter: value, previous, held; then per gauge: inFlight, earliest expiry (-1 = none).
 * States are after applying when admitted, before applying when denied.
 *
 * Errors: `TOLLGATE_CORRUPT <key> ...` for malformed stored values, `WRONGTYPE` for keys of the wrong type;
 * both are raised before any write except prunes of expired entries.
 */
export const ADMIT_LUA = `${PRELUDE}
local now = clock(ARGV[1])
local id = ARGV[2]
local ttl = tonumber(ARGV[3])
local nw = tonumber(ARGV[4])
local ng = tonumber(ARGV[5])

-- Layout pass (see layout in the prelude). Counters are addressed by index (KEYS[kk..], ARGV[ca..ca+3]).
local wk, wa, wn, ww, wsl, skeys, hkeys, gk0, ga0 = layout(nw, 6, 2, 3, 4)

-- Read phase: one MGET for every window start, value and previous value; one EXISTS for every hold key.
local vals = load(skeys)
local holds_in_use = any_exists(hkeys)

-- The reply is built as the state is read (value, previous, held per counter: the state before applying), and
-- the write phase adds what it applies. Per window, its roll kind; per counter, the amount this lease already
-- holds (only when some counter has holds).
local dkind, da, db = 0, 0, 0
local out = { 0, now, 0, 0, 0 }
local kinds, mine = {}, {}
local si, o, n = 1, 5, 0
for w = 1, nw do
  local W, sliding = ww[w], wsl[w]
  local start, kind = roll(int(KEYS[wk[w]], vals[si]), W, sliding, now)
  si = si + 1
  kinds[w] = kind
  o = o + 1
  out[o] = start
  local el = now - start
  local st = stride(sliding)
  local kk, ca = wk[w] + 1, wa[w] + 3
  for c = 0, wn[w] - 1 do
    local v, p, h, m, _
    v, p, h, m, _, si = read_counter(kk, st, vals, si, sliding, kind, holds_in_use, now, id)
    out[o + 1], out[o + 2], out[o + 3] = v, p, h
    o, n = o + 3, n + 1
    if m > 0 then mine[n] = m end
    if dkind == 0 and ARGV[ca + 3] == '1' then
      local limit = tonumber(ARGV[ca])
      local add = tonumber(ARGV[ca + 1]) + tonumber(ARGV[ca + 2])
      local used = v + h
      local over
      if sliding then
        -- used = p * (W - el) / W + v + held, compared exactly by multiplying through by W
        local lhs = p * (W - el) + (used + add) * W
        if add > 0 then over = lhs > limit * W else over = lhs >= limit * W end
      else
        if add > 0 then over = used + add > limit else over = used >= limit end
      end
      if over then dkind, da, db = 1, w - 1, c end
    end
    kk, ca = kk + st, ca + 4
  end
end

local inflight = {}
for g = 1, ng do
  local key = KEYS[gk0 + g - 1]
  local ga = ga0 + 2 * (g - 1)
  call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
  local count_ = call('ZCARD', key)
  if dkind == 0 and ARGV[ga + 1] == '1' and count_ + 1 > tonumber(ARGV[ga]) then dkind, da, db = 2, g - 1, 0 end
  inflight[g] = count_
end

-- Write phase. Rolled windows are persisted whatever the outcome (nothing observable changes); amounts, holds
-- and leases only when admitted.
local admitted = dkind == 0
out[1], out[3], out[4], out[5] = admitted and 1 or 0, dkind, da, db
si, o, n = 1, 5, 0
for w = 1, nw do
  local W, sliding = ww[w], wsl[w]
  local start, kind = out[o + 1], kinds[w]
  si = si + 1
  -- The keys' TTL as a string, computed when first needed.
  local px
  if kind ~= 0 then
    px = fmt(window_ttl(start, W, sliding, now))
    call('SET', KEYS[wk[w]], fmt(start), 'PX', px)
  end
  o = o + 1
  local st = stride(sliding)
  local kk, ca = wk[w] + 1, wa[w] + 3
  for c = 0, wn[w] - 1 do
    n = n + 1
    local amount = 0
    if admitted then amount = tonumber(ARGV[ca + 1]) end
    local nv = out[o + 1] + amount
    if kind ~= 0 then
      call('SET', KEYS[kk], fmt(nv), 'PX', px)
      if sliding then call('SET', KEYS[kk + 1], fmt(out[o + 2]), 'PX', px) end
    elseif amount > 0 then
      -- Current window: INCRBY keeps the key's TTL; a key missing from a live window gets one.
      if vals[si] then
        call('INCRBY', KEYS[kk], ARGV[ca + 1])
      else
        px = px or fmt(window_ttl(start, W, sliding, now))
        call('SET', KEYS[kk], fmt(nv), 'PX', px)
      end
    end
    out[o + 1] = nv
    if admitted then
      local hold = tonumber(ARGV[ca + 2])
      if hold > 0 then
        local hk = kk + st - 2
        call('ZADD', KEYS[hk], fmt(now + ttl), id)
        call('HSET', KEYS[hk + 1], id, ARGV[ca + 2])
        extend(KEYS[hk], ttl)
        extend(KEYS[hk + 1], ttl)
        out[o + 3] = out[o + 3] - (mine[n] or 0) + hold
      end
    end
    if sliding then si = si + 2 else si = si + 1 end
    o, kk, ca = o + 3, kk + st, ca + 4
  end
end

for g = 1, ng do
  local key = KEYS[gk0 + g - 1]
  local count_ = inflight[g]
  if admitted then
    count_ = count_ + call('ZADD', key, fmt(now + ttl), id)
    extend(key, ttl)
  end
  out[o + 1], out[o + 2] = count_, earliest(key)
  o = o + 2
end

return out
`;
