import { PRELUDE } from "./prelude.js";

/**
 * `admit`: the whole admission of one batch (docs/store-contract.md, "admit"), all-or-nothing.
 *
 * KEYS, in order, for each window w (then for each gauge):
 * - `KEYS[k]`      `P{base}:window`       window start (integer ms)
 * - per counter c of w, four keys:
 *   - `P{base}:<name>`        committed value (integer)
 *   - `P{base}:<name>:prev`   previous window's value (sliding; unused but passed for fixed windows)
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

-- Layout pass: where each window's keys and arguments start. No per-counter tables: counters are addressed by
-- index (KEYS[kk..kk+3], ARGV[ca..ca+3]) and their state lives in flat arrays, which keeps the script cheap.
local wk, wa, wn = {}, {}, {}
local skeys, hkeys = {}, {}
local a, k = 6, 1
for w = 1, nw do
  local nc = tonumber(ARGV[a + 2])
  local sliding = ARGV[a + 1] == '1'
  wk[w], wa[w], wn[w] = k, a, nc
  k = window_keys(k, nc, sliding, skeys, hkeys)
  a = a + 3 + 4 * nc
end
local gk0, ga0 = k, a

-- Read phase: one MGET for every window start, value and previous value; one EXISTS for every hold key.
local vals = load(skeys)
local holds_in_use = any_exists(hkeys)

local dkind, da, db = 0, 0, 0
local starts, kinds = {}, {}
local value, prev, held, mine, existed = {}, {}, {}, {}, {}
local si, n = 1, 0
for w = 1, nw do
  local W = tonumber(ARGV[wa[w]])
  local sliding = ARGV[wa[w] + 1] == '1'
  local start, kind = roll(int(KEYS[wk[w]], vals[si]), W, sliding, now)
  si = si + 1
  starts[w], kinds[w] = start, kind
  local el = now - start
  for c = 0, wn[w] - 1 do
    n = n + 1
    local kk = wk[w] + 1 + 4 * c
    local ca = wa[w] + 3 + 4 * c
    local v, p, h, m
    v, p, h, m, existed[n], si = read_counter(kk, vals, si, sliding, kind, holds_in_use, now, id)
    value[n], prev[n], held[n], mine[n] = v, p, h, m
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
local out = { admitted and 1 or 0, now, dkind, da, db }
n = 0
for w = 1, nw do
  local W = tonumber(ARGV[wa[w]])
  local sliding = ARGV[wa[w] + 1] == '1'
  local start, kind = starts[w], kinds[w]
  local px = window_ttl(start, W, sliding, now)
  if kind ~= 0 then call('SET', KEYS[wk[w]], fmt(start), 'PX', fmt(px)) end
  out[#out + 1] = start
  for c = 0, wn[w] - 1 do
    n = n + 1
    local kk = wk[w] + 1 + 4 * c
    local ca = wa[w] + 3 + 4 * c
    local amount = 0
    if admitted then amount = tonumber(ARGV[ca + 1]) end
    local nv = value[n] + amount
    if kind ~= 0 then
      call('SET', KEYS[kk], fmt(nv), 'PX', fmt(px))
      if sliding then call('SET', KEYS[kk + 1], fmt(prev[n]), 'PX', fmt(px)) end
    elseif amount > 0 then
      -- Current window: INCRBY keeps the key's TTL; a key missing from a live window gets one.
      if existed[n] then call('INCRBY', KEYS[kk], ARGV[ca + 1]) else call('SET', KEYS[kk], fmt(nv), 'PX', fmt(px)) end
    end
    local h = held[n]
    local hold = tonumber(ARGV[ca + 2])
    if admitted and hold > 0 then
      call('ZADD', KEYS[kk + 2], fmt(now + ttl), id)
      call('HSET', KEYS[kk + 3], id, ARGV[ca + 2])
      extend(KEYS[kk + 2], ttl)
      extend(KEYS[kk + 3], ttl)
      h = h - mine[n] + hold
    end
    out[#out + 1] = nv
    out[#out + 1] = prev[n]
    out[#out + 1] = h
  end
end

for g = 1, ng do
  local key = KEYS[gk0 + g - 1]
  local count_ = inflight[g]
  if admitted then
    count_ = count_ + call('ZADD', key, fmt(now + ttl), id)
    extend(key, ttl)
  end
  out[#out + 1] = count_
  out[#out + 1] = earliest(key)
end

return out
`;
