import { CORRUPT_MARKER } from "../errors.js";

/**
 * Lua helpers shared by every script. Each script is `PRELUDE + body`, so every script is self-contained
 * (Redis caches scripts by SHA1 of their full text) and the helpers are written once.
 *
 * Conventions:
 * - Every number written to Redis goes through `fmt` (`%d`), so large integers never turn into `1e+15`.
 * - `int(key, raw)` parses a stored integer strictly (`^-?%d+$`); anything else raises
 *   `TOLLGATE_CORRUPT <key>` (`CORRUPT_MARKER`), which the TypeScript side maps to
 *   `TollgateError("STORE_DATA_CORRUPT")`.
 *   A key of the wrong type makes `redis.call` raise `WRONGTYPE`, mapped the same way.
 * - Scripts read (and validate) everything before their first observable write, so an error never
 *   leaves a half-applied batch. Only prunes of expired entries may happen before an error.
 */
export const PRELUDE = `
-- Globals read once: local access is cheaper than a global lookup on every use.
local call, tonumber, format, match = redis.call, tonumber, string.format, string.match

local function fmt(n)
  return format('%d', n)
end

local function corrupt(key, why)
  error({ err = '${CORRUPT_MARKER} ' .. key .. ' ' .. why })
end

-- Strict integer parse of a stored value; nil when the key is absent.
local function int(key, raw)
  if not raw then return nil end
  if type(raw) ~= 'string' or #raw > 17 or not match(raw, '^%-?%d+$') then
    corrupt(key, 'holds a non-integer value')
  end
  return tonumber(raw)
end

-- A counter value: a non-negative integer, 0 when absent.
local function count(key, raw)
  local n = int(key, raw)
  if not n then return 0 end
  if n < 0 then corrupt(key, 'holds a negative counter') end
  return n
end

-- Reads string keys with one MGET. MGET answers nil for a key of another type, so the nils are checked with
-- one EXISTS (only when some are nil) and a key that exists there raises WRONGTYPE.
local function load(keys)
  if #keys == 0 then return {} end
  local vals = call('MGET', unpack(keys))
  local missing
  for i = 1, #keys do
    if not vals[i] then
      missing = missing or {}
      missing[#missing + 1] = keys[i]
    end
  end
  if missing and call('EXISTS', unpack(missing)) > 0 then
    for _, key in ipairs(missing) do
      local t = call('TYPE', key)['ok']
      if t ~= 'none' then error({ err = 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected a string' }) end
    end
  end
  return vals
end

-- True when any of the keys exists (one EXISTS call; false for an empty list).
local function any_exists(keys)
  return #keys > 0 and call('EXISTS', unpack(keys)) > 0
end

-- The store clock: server TIME in ms, unless a test clock is injected (ARGV[1] of every script).
local function clock(injected)
  if injected ~= '' then return tonumber(injected) end
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Rolls a window (contract step 3). Returns start and kind: 0 current, 1 fresh, 2 shifted (sliding).
local function roll(stored, W, sliding, now)
  if not stored then return now, 1 end
  local e = now - stored
  if e < W then return stored, 0 end
  if sliding and e < 2 * W then return stored + W, 2 end
  return now, 1
end

-- Milliseconds a window's keys live from now: until start + W (fixed) or start + 2W (sliding), at least 1.
local function window_ttl(start, W, sliding, now)
  local span = W
  if sliding then span = 2 * W end
  local px = start + span - now
  if px < 1 then px = 1 end
  return px
end

-- Extends a key's TTL to at least ms (keys of holds and gauges live as long as their latest entry).
local function extend(key, ms)
  if call('PTTL', key) < ms then call('PEXPIRE', key, fmt(ms)) end
end

-- Drops expired holds of one counter and answers the live total and the amount held by lease id.
local function held_pruned(holds, held, now, id)
  local expired = call('ZRANGEBYSCORE', holds, '-inf', fmt(now))
  if #expired > 0 then
    call('ZREMRANGEBYSCORE', holds, '-inf', fmt(now))
    for i = 1, #expired, 1000 do
      call('HDEL', held, unpack(expired, i, math.min(i + 999, #expired)))
    end
  end
  local all = call('HGETALL', held)
  local sum, mine = 0, 0
  for i = 1, #all, 2 do
    local a = count(held, all[i + 1])
    sum = sum + a
    if all[i] == id then mine = a end
  end
  return sum, mine
end

-- Keys per counter in KEYS: value, previous value (sliding windows only), holds, held (the two hold keys are left
-- out where a script reads no holds: adjust without read-back). A counter's keys start at kk; its holds key is at
-- kk + stride - 2 and its held key right after.
local function stride(sliding, holds)
  local n = 1
  if sliding then n = 2 end
  if holds ~= false then n = n + 2 end
  return n
end

-- Layout pass of admit, adjust and read over the windows described in ARGV from index a: each window has
-- \`head\` arguments (windowMs first, sliding flag second, number of counters at offset nco), then \`per\`
-- arguments per counter. Answers one table per window field: first key (wk), first argument (wa), number of
-- counters (wn), windowMs (ww), sliding (wsl); the keys MGET reads (starts, values, previous values of sliding
-- windows) and the hold keys, in KEYS order; and the key and argument indices after the windows. With holds
-- false, counters have no hold keys (see stride).
local function layout(nw, a, nco, head, per, holds)
  local wk, wa, wn, ww, wsl = {}, {}, {}, {}, {}
  local skeys, hkeys, ns, nh, k = {}, {}, 0, 0, 1
  for w = 1, nw do
    local nc, sliding = tonumber(ARGV[a + nco]), ARGV[a + 1] == '1'
    wk[w], wa[w], wn[w], ww[w], wsl[w] = k, a, nc, tonumber(ARGV[a]), sliding
    ns = ns + 1
    skeys[ns] = KEYS[k]
    k = k + 1
    for _ = 1, nc do
      ns = ns + 1
      skeys[ns] = KEYS[k]
      if sliding then
        ns = ns + 1
        skeys[ns] = KEYS[k + 1]
        k = k + 1
      end
      if holds ~= false then
        hkeys[nh + 1], hkeys[nh + 2] = KEYS[k + 1], KEYS[k + 2]
        nh = nh + 2
        k = k + 2
      end
      k = k + 1
    end
    a = a + head + per * nc
  end
  return wk, wa, wn, ww, wsl, skeys, hkeys, k, a
end

-- One counter's value and previous value, from the MGET answer at vals[si] (and vals[si + 1] for a sliding
-- window), after the window's roll kind. Answers value, previous, and the next index into vals.
local function counter_values(kk, vals, si, sliding, kind)
  local v = count(KEYS[kk], vals[si])
  si = si + 1
  local p = 0
  if sliding then
    p = count(KEYS[kk + 1], vals[si])
    si = si + 1
  end
  if kind == 1 then
    v, p = 0, 0
  elseif kind == 2 then
    v, p = 0, v
  end
  return v, p, si
end

-- One counter's state: its values (see counter_values) and its holds (pruned). kk is its first key and st the
-- stride of its window (see stride). Answers value, previous, live held total, amount held by lease id, whether
-- the value key existed, and the next index into vals.
local function read_counter(kk, st, vals, si, sliding, kind, holds_in_use, now, id)
  local raw = vals[si]
  local v, p
  v, p, si = counter_values(kk, vals, si, sliding, kind)
  local h, m = 0, 0
  local hk = kk + st - 2
  if holds_in_use and call('EXISTS', KEYS[hk], KEYS[hk + 1]) > 0 then
    h, m = held_pruned(KEYS[hk], KEYS[hk + 1], now, id)
  end
  return v, p, h, m, raw ~= false, si
end

-- Read-only variant: the live total without pruning anything.
local function held_live(holds, held, now)
  local live = call('ZRANGEBYSCORE', holds, '(' .. fmt(now), '+inf')
  local sum = 0
  for i = 1, #live, 1000 do
    local vals = call('HMGET', held, unpack(live, i, math.min(i + 999, #live)))
    for j = 1, #vals do
      if vals[j] then sum = sum + count(held, vals[j]) end
    end
  end
  return sum
end

-- Earliest live expiry of a gauge (after pruning), or -1 when empty.
local function earliest(gauge)
  local first = call('ZRANGE', gauge, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return -1
end
`;
