import { LUA_EARLIEST, LUA_HELD_PRUNED, LUA_TICKETS, LUA_WINDOW_OF_START, LUA_WINDOW_TTL, PRELUDE } from "./prelude.js";

/**
 * `admit`: the whole admission of one batch (docs/store-contract.md, "admit"), all-or-nothing, and its ticket.
 *
 * KEYS, in three sections (see the prelude):
 * - strings, `KEYS[1..ns]` (one MGET):
 *   - the ticket key when the batch records a ticket (ARGV[4] > 0)
 *   - per window w: `P{base}:window` (start, integer ms), then per counter `P{base}:<name>` (value) and, in a
 *     sliding window, `P{base}:<name>:prev` (previous window's value)
 * - holds, `KEYS[ns+1 .. ns+2*nh]`: per counter of each window with holds, `P{base}:<name>:holds` (sorted set
 *   lease id -> expiry ms) and `P{base}:<name>:held` (hash lease id -> amount)
 * - gauges: per gauge `P{base}:<name>` (sorted set lease id -> expiry ms)
 *
 * ARGV (numbers in base 36):
 * - `ARGV[1]` test clock in ms replacing server TIME (`""` in production)
 * - `ARGV[2]` lease id (`""` when the batch has no lease), `ARGV[3]` lease TTL in ms (0 when no lease)
 * - `ARGV[4]` ticket TTL in ms (0: no ticket key)
 * - `ARGV[5]` `65536 × windows + gauges`
 * - per window: `1024 × windowMs + 4 × counters + flags` (flags: 1 sliding + 2 holds), then per counter:
 *   `limit + 1` (0 when not enforced), the amount, and the hold (windows with holds only)
 * - per gauge: `limit + 1` (0 when not enforced)
 *
 * Reply (flat integer array): admitted (1/0), now, denied kind (0 none, 1 counter, 2 gauge, 3 ticket finished),
 * denied index a (window or gauge, 0-based), denied index b (counter, 0-based), then per window: start, then per
 * counter: value, previous (sliding windows only), held (windows with holds only); then per gauge: inFlight,
 * earliest expiry (-1 = none). States are after applying when admitted, before applying when denied.
 *
 * Errors: `TOLLGATE_CORRUPT <key> ...` for malformed stored values, `WRONGTYPE` for keys of the wrong type;
 * both are raised before any write except prunes of expired entries.
 */
export const ADMIT_LUA = `${PRELUDE}${LUA_TICKETS}${LUA_WINDOW_TTL}${LUA_HELD_PRUNED}${LUA_EARLIEST}
local now, tested = clock(ARGV[1])
local id, ttl, tttl = ARGV[2], tonumber(ARGV[3], 36), tonumber(ARGV[4], 36)
local shape = tonumber(ARGV[5], 36)
local ng = shape % 65536
local nw = (shape - ng) / 65536

-- Layout pass over the window descriptions: per window (4 slots in wt) its length, counters, flags and first
-- argument; the sizes of the KEYS sections.
local wt = {}
local ns, nh, a = tttl > 0 and 1 or 0, 0, 6
for w = 1, nw do
  local m = tonumber(ARGV[a], 36)
  local f = m % 4
  local rest = (m - f) / 4
  local nc = rest % 256
  local j = 4 * w
  wt[j - 3], wt[j - 2], wt[j - 1], wt[j] = (rest - nc) / 256, nc, f, a + 1
  if f % 2 == 1 then ns = ns + 1 + 2 * nc else ns = ns + 1 + nc end
  if f >= 2 then
    nh = nh + nc
    a = a + 1 + 3 * nc
  else
    a = a + 1 + 2 * nc
  end
end
local ga = a

-- Read phase: one MGET for the ticket and every window start, value and previous value; one EXISTS for every hold
-- key. The reply is built as the state is read (the state before applying); the write phase adds what it applies.
local vals = ns > 0 and call('MGET', unpack(KEYS, 1, ns)) or {}
local holds_in_use = nh > 0 and call('EXISTS', unpack(KEYS, ns + 1, ns + 2 * nh)) > 0
local missing, mine, existing
local dkind, da, db = 0, 0, 0
local k = 1
if tttl > 0 then
  -- A new ticket is absent: its key is not type-checked (SET overwrites whatever another writer left there).
  local tv = vals[1]
  if tv and ticket_state(KEYS[1], tv, now, tested) == 3 then dkind = 3 end
  k = 2
end
local out = { 0, now, 0, 0, 0 }
-- Per window its roll kind (0 current, 1 fresh, 2 shifted), in kinds.
local kinds = {}
local o, hk = 5, ns + 1
for w = 1, nw do
  local j = 4 * w
  local W, nc, f = wt[j - 3], wt[j - 2], wt[j - 1]
  a = wt[j]
  local sliding, holds = f % 2 == 1, f >= 2
  local key, raw = KEYS[k], vals[k]
  local stored = int(key, raw)${LUA_WINDOW_OF_START}
  kinds[w] = kind
  k, o = k + 1, o + 1
  out[o] = start
  local el = now - start
  if el < 0 then el = 0 end
  for c = 0, nc - 1 do
    local rv = vals[k]
    local v, p = 0, 0
    if rv then
      -- int(), inlined: this runs for every counter of every admission.
      v = tonumber(rv)
      if not v or v < 0 or v >= 1e17 or v % 1 ~= 0 or #rv ~= ndigits(v) then corrupt(KEYS[k], 'holds a non-integer value') end
    else
      missing = missing or {}
      missing[#missing + 1] = KEYS[k]
    end
    if sliding then
      local rp = vals[k + 1]
      if rp then p = int(KEYS[k + 1], rp) else missing = missing or {}; missing[#missing + 1] = KEYS[k + 1] end
      k = k + 2
    else
      k = k + 1
    end
    if kind == 1 then v, p = 0, 0 elseif kind == 2 then v, p = 0, v end
    local h = 0
    o = o + 1
    out[o] = v
    if sliding then o = o + 1; out[o] = p end
    local lim = tonumber(ARGV[a], 36)
    local add = tonumber(ARGV[a + 1], 36)
    if holds then
      if holds_in_use and call('EXISTS', KEYS[hk], KEYS[hk + 1]) > 0 then
        local m
        h, m = held_pruned(KEYS[hk], KEYS[hk + 1], now, id)
        if m > 0 then mine = mine or {}; mine[hk] = m end
        -- Live holds left after pruning: both keys stay, with a TTL that only ever grows (PEXPIRE GT below).
        if h > 0 then existing = existing or {}; existing[hk] = true end
      end
      hk = hk + 2
      o = o + 1
      out[o] = h
      add = add + tonumber(ARGV[a + 2], 36)
      a = a + 3
    else
      a = a + 2
    end
    if dkind == 0 and lim > 0 then
      local limit = lim - 1
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
check_missing(missing)

local gk0 = ns + 2 * nh + 1
local inflight
if ng > 0 then
  inflight = {}
  a = ga
  for g = 0, ng - 1 do
    local key = KEYS[gk0 + g]
    call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
    local cnt = call('ZCARD', key)
    local lim = tonumber(ARGV[a], 36)
    if dkind == 0 and lim > 0 and cnt + 1 > lim - 1 then dkind, da, db = 2, g, 0 end
    inflight[g + 1] = cnt
    a = a + 1
  end
end

-- Write phase. Rolled windows are persisted whatever the outcome (nothing observable changes); amounts, holds,
-- leases and the ticket only when admitted.
local admitted = dkind == 0
out[1], out[3], out[4], out[5] = admitted and 1 or 0, dkind, da, db
k, o, hk = 1, 5, ns + 1
if tttl > 0 then
  k = 2
  if admitted then call('SET', KEYS[1], ticket_value(now, now + tttl, tested), 'PX', tttl) end
end
for w = 1, nw do
  local j = 4 * w
  local W, nc, f = wt[j - 3], wt[j - 2], wt[j - 1]
  a = wt[j]
  local sliding, holds = f % 2 == 1, f >= 2
  local kind = kinds[w]
  o = o + 1
  local start = out[o]
  -- The keys' TTL as a string, computed when first needed.
  local px
  if kind ~= 0 then
    px = fmt(window_ttl(start, W, sliding, now))
    call('SET', KEYS[k], fmt(start), 'PX', px)
  end
  k = k + 1
  for _ = 1, nc do
    o = o + 1
    local amount = admitted and tonumber(ARGV[a + 1], 36) or 0
    local nv = out[o] + amount
    if kind ~= 0 then
      call('SET', KEYS[k], fmt(nv), 'PX', px)
      if sliding then call('SET', KEYS[k + 1], fmt(out[o + 1]), 'PX', px) end
    elseif amount > 0 then
      -- Current window: INCRBY keeps the key's TTL; a key missing from a live window gets one.
      if vals[k] then
        call('INCRBY', KEYS[k], amount)
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
        local hold = tonumber(ARGV[a + 2], 36)
        if hold > 0 then
          call('ZADD', KEYS[hk], now + ttl, id)
          call('HSET', KEYS[hk + 1], id, hold)
          -- The keys live as long as their latest entry: keys with live holds (so a TTL) take only a longer one,
          -- new keys (or keys emptied by the prune, hence deleted) this TTL.
          local gt = existing and existing[hk] and 'GT' or nil
          if gt then
            call('PEXPIRE', KEYS[hk], ttl, gt)
            call('PEXPIRE', KEYS[hk + 1], ttl, gt)
          else
            call('PEXPIRE', KEYS[hk], ttl)
            call('PEXPIRE', KEYS[hk + 1], ttl)
          end
          out[o] = out[o] - (mine and mine[hk] or 0) + hold
        end
      end
      hk, a = hk + 2, a + 3
    else
      a = a + 2
    end
  end
end

for g = 0, ng - 1 do
  local key = KEYS[gk0 + g]
  local cnt = inflight[g + 1]
  if admitted then
    local before = cnt
    cnt = cnt + call('ZADD', key, now + ttl, id)
    -- A gauge that had live entries has a TTL: only a longer one replaces it; a new one takes this TTL.
    if before > 0 then call('PEXPIRE', key, ttl, 'GT') else call('PEXPIRE', key, ttl) end
  end
  out[o + 1], out[o + 2] = cnt, earliest(key)
  o = o + 2
end

return out
`;
