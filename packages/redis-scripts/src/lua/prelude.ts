import { CORRUPT_MARKER } from "../errors.js";

/**
 * Lua helpers shared by the scripts. Each script is `PRELUDE` + the helper pieces it uses + its body, so every script
 * is self-contained (Redis caches scripts by SHA1 of their full text), the helpers are written once, and a call
 * creates only the closures its script uses (each costs some Redis CPU per call).
 *
 * Conventions (each one measured: Redis CPU per call is what bounds throughput):
 * - Numbers travel in ARGV in **base 36** (`n(ARGV[i])` reads one with `tonumber(s, 36)`, which is strtoul: about
 *   half the cost of a decimal `tonumber`, which is strtod), small counts and flags packed into one number, so a call
 *   carries few arguments (each costs about as much as a `redis.call` to receive).
 * - Numbers written to Redis stay decimal (LiteLLM's layout, INCRBY): passed to `redis.call` as Lua numbers (Redis
 *   prints them with `%.17g`, exact for the integers below 1e17 the scripts handle) or, inside strings, with `fmt`
 *   (`%d`).
 * - `int(key, raw)` reads a stored integer strictly: a non-negative integer written canonically (as many characters as
 *   digits: no sign, exponent, leading zero, space or fraction); anything else raises `TOLLGATE_CORRUPT <key>`
 *   (`CORRUPT_MARKER`), which the TypeScript side maps to `TollgateError("STORE_DATA_CORRUPT")`. A key of the wrong
 *   type makes `redis.call` raise `WRONGTYPE`, mapped the same way.
 * - Scripts read (and validate) everything before their first observable write, so an error never
 *   leaves a half-applied batch. Only prunes of expired entries may happen before an error.
 * - KEYS come in sections: first every string key (the ticket, then per window its start and counter values), so one
 *   `MGET` over `KEYS[1..ns]` reads them all with no table built in Lua; then the hold keys; then the lease keys.
 *   The scripts count the sections from the window descriptions.
 * - Tickets (contract 2) are strings: `o<admitted at>` open, `f` finished, each living by its key's TTL (server
 *   time). With an injected test clock, whose time the key TTLs do not follow, they carry their end too:
 *   `o<admitted at>:<until>`, `f<until>`. An absent or outlived one is unknown.
 */
/** Helpers every script uses: number formatting and strict parsing, corruption errors, the clock. */
export const PRELUDE = `
-- Globals read once: local access is cheaper than a global lookup on every use.
local call, tonumber, format, byte = redis.call, tonumber, string.format, string.byte

local function fmt(n)
  return format('%d', n)
end

local function corrupt(key, why)
  error({ err = '${CORRUPT_MARKER} ' .. key .. ' ' .. why })
end

-- Decimal digits of a non-negative integer below 1e17.
local function ndigits(a)
  if a < 1e8 then
    if a < 1e4 then
      if a < 10 then return 1 elseif a < 100 then return 2 elseif a < 1000 then return 3 end
      return 4
    end
    if a < 1e5 then return 5 elseif a < 1e6 then return 6 elseif a < 1e7 then return 7 end
    return 8
  end
  if a < 1e12 then
    if a < 1e9 then return 9 elseif a < 1e10 then return 10 elseif a < 1e11 then return 11 end
    return 12
  end
  if a < 1e13 then return 13 elseif a < 1e14 then return 14 elseif a < 1e15 then return 15 elseif a < 1e16 then return 16 end
  return 17
end

-- Strict parse of a stored non-negative integer; nil when the key is absent.
local function int(key, raw)
  if not raw then return nil end
  local v = tonumber(raw)
  if not v or v < 0 or v >= 1e17 or v % 1 ~= 0 or #raw ~= ndigits(v) then corrupt(key, 'holds a non-integer value') end
  return v
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

-- The store clock: server TIME in ms, unless a test clock is injected (ARGV[1] of every script, base 36).
local function clock(injected)
  if injected ~= '' then return tonumber(injected, 36), true end
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), false
end

`;

/** Tickets (contract 2): reading, the admission time of an open one, writing. */
export const LUA_TICKETS = `
-- A ticket's state from its stored value at time now: 1 open, 2 unknown (absent, or past its time), 3 finished.
-- \`tested\`: a test clock runs the script, so the value's own end decides instead of the key's TTL.
local function ticket_state(key, raw, now, tested)
  if not raw then return 2 end
  local b = byte(raw, 1)
  if b ~= 111 and b ~= 102 then corrupt(key, 'is not a ticket') end
  if tested then
    local at = string.find(raw, ':', 2, true)
    local til = tonumber(string.sub(raw, (at or 1) + 1))
    if not til then corrupt(key, 'is not a ticket') end
    if til <= now then return 2 end
  end
  if b == 111 then return 1 end
  return 3
end

-- When an open ticket's admission applied (for compensations), from its value.
local function ticket_at(key, raw)
  local at = tonumber(string.match(raw, '^o(%d+)'))
  if not at then corrupt(key, 'is not a ticket') end
  return at
end

-- The value of a ticket: open since \`at\`, or finished (\`at\` nil), ending at \`til\` when a test clock runs.
local function ticket_value(at, til, tested)
  local v = at and 'o' .. fmt(at) or 'f'
  if tested then
    if at then v = v .. ':' end
    v = v .. fmt(til)
  end
  return v
end

`;

/**
 * Inline code (not a function: no closure or call per window) deciding which window a stored start means. Expects
 * the locals `key`, `stored` (the parsed start, nil when absent), `W` (window ms), `sliding` and `now`; defines
 * `start` and `kind` (0 current, 1 fresh: absent or long past, 2 the previous of a sliding window that rolled) and
 * appends absent keys to `missing`. A start more than one window in the future is corrupt.
 */
export const LUA_WINDOW_OF_START = `
  local start, kind = now, 1
  if stored then
    local e = now - stored
    if e < -W then corrupt(key, 'starts more than one window in the future') end
    if e < W then
      start, kind = stored, 0
    elseif sliding and e < 2 * W then
      start, kind = stored + W, 2
    end
  else
    missing = missing or {}
    missing[#missing + 1] = key
  end`;

/** A window's key TTL. */
export const LUA_WINDOW_TTL = `
-- Milliseconds a window's keys live from now: until start + W (fixed) or start + 2W (sliding), at least 1.
local function window_ttl(start, W, sliding, now)
  local span = W
  if sliding then span = 2 * W end
  local px = start + span - now
  if px < 1 then px = 1 end
  return px
end

`;

/** Holds: pruning with the live total. */
export const LUA_HELD_PRUNED = `
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
    local a = int(held, all[i + 1])
    sum = sum + a
    if all[i] == id then mine = a end
  end
  return sum, mine
end

`;

/** Key TTLs following their latest entry (renew). */
export const LUA_EXTEND = `
-- Extends a key's TTL to at least ms (keys of holds and gauges live as long as their latest entry).
local function extend(key, ms)
  if call('PTTL', key) < ms then call('PEXPIRE', key, fmt(ms)) end
end

`;

/** The live held total without pruning (read). */
export const LUA_HELD_LIVE = `
-- Read-only variant: the live total without pruning anything.
local function held_live(holds, held, now)
  local live = call('ZRANGEBYSCORE', holds, '(' .. fmt(now), '+inf')
  local sum = 0
  for i = 1, #live, 1000 do
    local vals = call('HMGET', held, unpack(live, i, math.min(i + 999, #live)))
    for j = 1, #vals do
      if vals[j] then sum = sum + int(held, vals[j]) end
    end
  end
  return sum
end

`;

/** A gauge's earliest live expiry. */
export const LUA_EARLIEST = `
-- Earliest live expiry of a gauge (after pruning), or -1 when empty.
local function earliest(gauge)
  local first = call('ZRANGE', gauge, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return -1
end
`;
