import { PRELUDE } from "./prelude.js";

/**
 * `admit`: the whole admission of one batch (docs/store-contract.md, "admit"), all-or-nothing, and its ticket.
 *
 * KEYS, in three sections (see the prelude):
 * - strings, `KEYS[1..ns]` (one MGET):
 *   - `P<ticket key>` when the batch records a ticket (ARGV[4] > 0): `o` open, `f` finished
 *   - per window w: `P{base}:window` (start, integer ms), then per counter `P{base}:<name>` (value) and, in a
 *     sliding window, `P{base}:<name>:prev` (previous window's value)
 * - holds, `KEYS[ns+1 .. ns+2*nh]`: per counter of each window with holds, `P{base}:<name>:holds` (sorted set
 *   lease id -> expiry ms) and `P{base}:<name>:held` (hash lease id -> amount)
 * - gauges: per gauge `P{base}:<name>` (sorted set lease id -> expiry ms)
 *
 * ARGV:
 * - `ARGV[1]` test clock in ms replacing server TIME (`""` in production)
 * - `ARGV[2]` lease id (`""` when the batch has no lease), `ARGV[3]` lease TTL in ms (0 when no lease)
 * - `ARGV[4]` ticket TTL in ms (0: no ticket key)
 * - `ARGV[5]` ns, `ARGV[6]` nh (counters with hold keys), `ARGV[7]` number of windows, `ARGV[8]` number of gauges
 * - per window: windowMs, flags (1 sliding + 2 holds), number of counters, then per counter:
 *   limit, amount, enforce (`1`/`0`), and hold (windows with holds only)
 * - per gauge: limit, enforce (`1`/`0`)
 *
 * Reply (flat integer array): admitted (1/0), now, denied kind (0 none, 1 counter, 2 gauge, 3 ticket finished),
 * denied index a (window or gauge, 0-based), denied index b (counter, 0-based), then per window: start, then per
 * counter: value, previous (sliding windows only), held (windows with holds only); then per gauge: inFlight,
 * earliest expiry (-1 = none). States are after applying when admitted, before applying when denied.
 *
 * Errors: `TOLLGATE_CORRUPT <key> ...` for malformed stored values, `WRONGTYPE` for keys of the wrong type;
 * both are raised before any write except prunes of expired entries.
 */
export const ADMIT_LUA = `${PRELUDE}
local now = clock(ARGV[1])
local id, ttl, tttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local ns, nh, nw, ng = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- Read phase: one MGET for the ticket and every window start, value and previous value; one EXISTS for every hold
-- key. The reply is built as the state is read (the state before applying); the write phase adds what it applies.
local vals = ns > 0 and call('MGET', unpack(KEYS, 1, ns)) or {}
local holds_in_use = nh > 0 and call('EXISTS', unpack(KEYS, ns + 1, ns + 2 * nh)) > 0
local missing
local dkind, da, db = 0, 0, 0
local k = 1
if tttl > 0 then
  if not vals[1] then missing = { KEYS[1] } elseif ticket_state(KEYS[1], vals[1], now) == 3 then dkind = 3 end
  k = 2
end
local out = { 0, now, 0, 0, 0 }
local o, a, hk = 5, 9, ns + 1
-- Per window, its roll kind; per counter with holds, the amount this lease already holds (when any).
local kinds, mine = {}, nil
for w = 1, nw do
  local W, flags, nc = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
  local sliding, holds = flags == '1' or flags == '3', flags == '2' or flags == '3'
  local raw = vals[k]
  local start, kind = roll(KEYS[k], int(KEYS[k], raw), W, sliding, now)
  if not raw then missing = missing or {}; missing[#missing + 1] = KEYS[k] end
  kinds[w] = kind
  k, a, o = k + 1, a + 3, o + 1
  out[o] = start
  local el = now - start
  if el < 0 then el = 0 end
  for c = 0, nc - 1 do
    local rv = vals[k]
    local v, p = count(KEYS[k], rv), 0
    if not rv then missing = missing or {}; missing[#missing + 1] = KEYS[k] end
    if sliding then
      p = count(KEYS[k + 1], vals[k + 1])
      if not vals[k + 1] then missing = missing or {}; missing[#missing + 1] = KEYS[k + 1] end
      k = k + 2
    else
      k = k + 1
    end
    if kind == 1 then v, p = 0, 0 elseif kind == 2 then v, p = 0, v end
    local h = 0
    o = o + 1
    out[o] = v
    if sliding then o = o + 1; out[o] = p end
    if holds then
      if holds_in_use and call('EXISTS', KEYS[hk], KEYS[hk + 1]) > 0 then
        local m
        h, m = held_pruned(KEYS[hk], KEYS[hk + 1], now, id)
        if m > 0 then mine = mine or {}; mine[hk] = m end
      end
      hk = hk + 2
      o = o + 1
      out[o] = h
    end
    if dkind == 0 and ARGV[a + 2] == '1' then
      local limit = tonumber(ARGV[a])
      local add = tonumber(ARGV[a + 1])
      if holds then add = add + tonumber(ARGV[a + 3]) end
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
    if holds then a = a + 4 else a = a + 3 end
  end
end
check_missing(missing)

local gk0, ga0 = ns + 2 * nh + 1, a
local inflight = {}
for g = 0, ng - 1 do
  local key = KEYS[gk0 + g]
  call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
  local n = call('ZCARD', key)
  if dkind == 0 and ARGV[a + 1] == '1' and n + 1 > tonumber(ARGV[a]) then dkind, da, db = 2, g, 0 end
  inflight[g + 1] = n
  a = a + 2
end

-- Write phase. Rolled windows are persisted whatever the outcome (nothing observable changes); amounts, holds,
-- leases and the ticket only when admitted.
local admitted = dkind == 0
out[1], out[3], out[4], out[5] = admitted and 1 or 0, dkind, da, db
k, a, o, hk = 1, 9, 5, ns + 1
if tttl > 0 then
  k = 2
  if admitted then call('SET', KEYS[1], 'o' .. fmt(now) .. ':' .. fmt(now + tttl), 'PX', ARGV[4]) end
end
for w = 1, nw do
  local W, flags, nc = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
  local sliding, holds = flags == '1' or flags == '3', flags == '2' or flags == '3'
  local kind = kinds[w]
  o = o + 1
  local start = out[o]
  -- The keys' TTL as a string, computed when first needed.
  local px
  if kind ~= 0 then
    px = fmt(window_ttl(start, W, sliding, now))
    call('SET', KEYS[k], fmt(start), 'PX', px)
  end
  k, a = k + 1, a + 3
  for _ = 1, nc do
    local amount = 0
    if admitted then amount = tonumber(ARGV[a + 1]) end
    o = o + 1
    local nv = out[o] + amount
    if kind ~= 0 then
      call('SET', KEYS[k], fmt(nv), 'PX', px)
      if sliding then call('SET', KEYS[k + 1], fmt(out[o + 1]), 'PX', px) end
    elseif amount > 0 then
      -- Current window: INCRBY keeps the key's TTL; a key missing from a live window gets one.
      if vals[k] then
        call('INCRBY', KEYS[k], ARGV[a + 1])
      else
        px = px or fmt(window_ttl(start, W, sliding, now))
        call('SET', KEYS[k], fmt(nv), 'PX', px)
      end
    end
    out[o] = nv
    if sliding then k, o = k + 2, o + 1 else k = k + 1 end
    if holds then
      o = o + 1
      if admitted then
        local hold = tonumber(ARGV[a + 3])
        if hold > 0 then
          call('ZADD', KEYS[hk], fmt(now + ttl), id)
          call('HSET', KEYS[hk + 1], id, ARGV[a + 3])
          extend(KEYS[hk], ttl)
          extend(KEYS[hk + 1], ttl)
          out[o] = out[o] - (mine and mine[hk] or 0) + hold
        end
      end
      hk, a = hk + 2, a + 4
    else
      a = a + 3
    end
  end
end

for g = 0, ng - 1 do
  local key = KEYS[gk0 + g]
  local n = inflight[g + 1]
  if admitted then
    n = n + call('ZADD', key, fmt(now + ttl), id)
    extend(key, ttl)
  end
  out[o + 1], out[o + 2] = n, earliest(key)
  o = o + 2
end

return out
`;
