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
 * - KEYS come in sections the encoder sizes for the script (counts in ARGV): first every string key (the ticket,
 *   then per window its start and counter values), so one `MGET` over `KEYS[1..ns]` reads them all with no table
 *   built in Lua; then the hold keys; then the lease keys.
 * - Tickets (contract 2) are strings: `o<admitted at>:<until>` open, `f<until>` finished (store-clock ms); an absent
 *   or outlived one is unknown.
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

-- MGET answers nil for a key of another type: the keys it answered nil for are checked with one EXISTS, and a key
-- that exists there raises WRONGTYPE. Called with the list of such keys (nil when there were none).
local function check_missing(missing)
  if missing and call('EXISTS', unpack(missing)) > 0 then
    for _, key in ipairs(missing) do
      local t = call('TYPE', key)['ok']
      if t ~= 'none' then error({ err = 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected a string' }) end
    end
  end
end

-- A ticket's state from its stored value at time now: 1 open (\`o<admitted at>:<until>\`), 2 unknown (absent, or past
-- its time), 3 finished (\`f<until>\`); and, when open, the time its admission was applied. Times are the store
-- clock's, so an injected test clock expires tickets like holds and leases (the key's own TTL only cleans up).
local function ticket_state(key, raw, now)
  if not raw then return 2, nil end
  local f = match(raw, '^f(%d+)$')
  if f and #f < 17 then
    if tonumber(f) <= now then return 2, nil end
    return 3, nil
  end
  local at, til = match(raw, '^o(%d+):(%d+)$')
  if not at or #at > 16 or #til > 16 then corrupt(key, 'is not a ticket') end
  if tonumber(til) <= now then return 2, nil end
  return 1, tonumber(at)
end

-- Marks a ticket finished until now + keep (ms, a string).
local function finish_ticket(key, now, keep)
  call('SET', key, 'f' .. fmt(now + tonumber(keep)), 'PX', keep)
end

-- The store clock: server TIME in ms, unless a test clock is injected (ARGV[1] of every script).
local function clock(injected)
  if injected ~= '' then return tonumber(injected) end
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Rolls a window (contract step 3). Returns start and kind: 0 current, 1 fresh, 2 shifted (sliding). A start more
-- than one window ahead of the clock was not written by a script (it would never roll): corrupt data. A start a
-- little ahead (a clock stepped back) is a current window.
local function roll(key, stored, W, sliding, now)
  if not stored then return now, 1 end
  local e = now - stored
  if e < -W then corrupt(key, 'starts more than one window in the future') end
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
