import { PRELUDE } from "./prelude.js";

/**
 * `adjust`: window-guarded deltas plus an optional lease release, atomically, exactly once per ticket
 * (docs/store-contract.md, "adjust" and "Tickets"). The release runs first, so the answered `held` reflects it.
 *
 * KEYS, in sections (see the prelude):
 * - strings, `KEYS[1..ns]` (one MGET): the ticket key when ARGV[9] is not `0`; then per window `P{base}:window`,
 *   then per counter `P{base}:<name>` and, in a sliding window, `P{base}:<name>:prev`
 * - with read-back only: per counter of each window with holds, `P{base}:<name>:holds`, `P{base}:<name>:held`
 * - per released gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 * - per released hold: `P{base}:<name>:holds`, `P{base}:<name>:held`
 *
 * ARGV:
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` lease id to release (`""` for none)
 * - `ARGV[3]` ns, `ARGV[4]` nh (counters with hold keys), `ARGV[5]` number of windows, `ARGV[6]` number of
 *   released gauges, `ARGV[7]` number of released holds
 * - `ARGV[8]` read-back (`1`: answer the states after the call; `0`: answer only now, released, the ticket state and
 *   applied; no hold keys are passed for the adjusted counters)
 * - `ARGV[9]` ticket: `0` none, `1` settle (apply unless finished), `2` release (apply only while open), `3` discard
 *   (store-internal compensation of an admission known to be applied: apply only while open, then delete the ticket
 *   instead of marking it finished, so the id can be admitted again)
 * - `ARGV[10]` how long the finished mark is kept, ms
 * - per window: windowMs, flags (1 sliding + 2 holds), guard (`0` none, `1` expected start, `2` the window the open
 *   ticket's admission applied to), expected start (ms, 0 unless guard `1`), number of counters, then one signed
 *   delta per counter
 *
 * Reply (flat integer array): now, released count, ticket state (0 no ticket, 1 open, 2 unknown, 3 finished: the
 * state found before the call), then per window: applied (1/0) and, with read-back, start, then per counter: value,
 * previous (sliding windows only), held (windows with holds only), after the call.
 *
 * Semantics: with a guard, deltas apply only when the stored window is current and starts at the expected
 * time, or (guard 2, compensations) started no later than the open ticket's admission (nothing is written
 * otherwise); without one, the window rolls as in `admit` and the deltas apply.
 * Values never go below 0. A ticket that says "do not apply" makes every window unapplied and releases nothing.
 * Errors as in `admit`.
 */
export const ADJUST_LUA = `${PRELUDE}
local now = clock(ARGV[1])
local id = ARGV[2]
local ns, nh, nw, nrg, nrh = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local read_back, tmode = ARGV[8] == '1', ARGV[9]

local vals = ns > 0 and call('MGET', unpack(KEYS, 1, ns)) or {}
local missing
local k, tstate, skip, topen = 1, 0, false, nil
if tmode ~= '0' then
  tstate, topen = ticket_state(KEYS[1], vals[1], now)
  if tmode == '1' then skip = tstate == 3 else skip = tstate ~= 1 end
  if skip and not read_back then
    -- Nothing to apply and nothing to read back: mark the ticket and answer at once.
    if not vals[1] then check_missing({ KEYS[1] }) end
    if tmode ~= '3' then finish_ticket(KEYS[1], now, ARGV[10]) end
    local short = { now, 0, tstate }
    for w = 1, nw do short[w + 3] = 0 end
    return short
  end
  if not vals[1] then missing = { KEYS[1] } end
  k = 2
end

-- Read phase, validating everything before the first write. The reply is built as the state is read (applied,
-- start, then value, previous, held per counter: the state before the call); the write phase updates it. Per
-- window, its roll kind; per counter with holds, the amount this lease holds (when any).
local holds_in_use = nh > 0 and call('EXISTS', unpack(KEYS, ns + 1, ns + 2 * nh)) > 0
local out = { now, 0, tstate }
local kinds, mine = {}, nil
-- Only when holds are released: holds key -> held key of every counter read here. The read pruned (and
-- type-checked) the pair, or found that neither key exists, so the release below need not prune it again.
local checked
if nrh > 0 and nh > 0 then checked = {} end
local o, a, hk = 3, 11, ns + 1
for w = 1, nw do
  local W, flags, nc = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 4])
  local sliding, holds = flags == '1' or flags == '3', flags == '2' or flags == '3'
  local raw = vals[k]
  local stored = int(KEYS[k], raw)
  if not raw then missing = missing or {}; missing[#missing + 1] = KEYS[k] end
  local start, kind = roll(KEYS[k], stored, W, sliding, now)
  kinds[w] = kind
  local guard, ok = ARGV[a + 2], false
  if skip then
    ok = false
  elseif guard == '0' then
    ok = true
  elseif stored ~= nil and kind == 0 then
    -- 1: the window starts at the expected time; 2: the window the ticket's admission applied to (it started no
    -- later than the admission; any later window started after it).
    if guard == '1' then ok = stored == tonumber(ARGV[a + 3]) else ok = topen ~= nil and stored <= topen end
  end
  out[o + 1], out[o + 2] = ok and 1 or 0, start
  k, a, o = k + 1, a + 5 + nc, o + 2
  for _ = 1, nc do
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
    o = o + 1
    out[o] = v
    if sliding then o = o + 1; out[o] = p end
    if holds and read_back then
      local h = 0
      if holds_in_use and call('EXISTS', KEYS[hk], KEYS[hk + 1]) > 0 then
        local m
        h, m = held_pruned(KEYS[hk], KEYS[hk + 1], now, id)
        if m > 0 then mine = mine or {}; mine[hk] = m end
      end
      if checked then checked[KEYS[hk]] = KEYS[hk + 1] end
      hk = hk + 2
      o = o + 1
      out[o] = h
    end
  end
end
check_missing(missing)

-- Type-check and prune the release keys the read phase did not, still before the first write.
local rk = ns + 2 * nh + 1
local rk0 = rk
for _ = 1, nrg do
  call('ZREMRANGEBYSCORE', KEYS[rk], '-inf', fmt(now))
  rk = rk + 1
end
for _ = 1, nrh do
  if not checked or checked[KEYS[rk]] ~= KEYS[rk + 1] then held_pruned(KEYS[rk], KEYS[rk + 1], now, id) end
  rk = rk + 2
end

local released = 0
local freed
if id ~= '' and not skip then
  rk = rk0
  for _ = 1, nrg do
    released = released + call('ZREM', KEYS[rk], id)
    rk = rk + 1
  end
  for _ = 1, nrh do
    if call('ZREM', KEYS[rk], id) == 1 then
      call('HDEL', KEYS[rk + 1], id)
      released = released + 1
      freed = freed or {}
      freed[KEYS[rk]] = true
    end
    rk = rk + 2
  end
end
out[2] = released

-- The ticket: finished for keepMs (a discard deletes an open one instead).
if tmode == '3' then
  if not skip then call('DEL', KEYS[1]) end
elseif tmode ~= '0' then
  finish_ticket(KEYS[1], now, ARGV[10])
end

-- Without read-back the reply is now, released, the ticket state, and applied per window.
local short
if not read_back then short = { now, released, tstate } end
k, a, o, hk = tmode ~= '0' and 2 or 1, 11, 3, ns + 1
for w = 1, nw do
  local W, flags, nc = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 4])
  local sliding, holds = flags == '1' or flags == '3', flags == '2' or flags == '3'
  local ok, start, kind = out[o + 1] == 1, out[o + 2], kinds[w]
  if short then short[w + 3] = out[o + 1] end
  -- The keys' TTL as a string, computed when first needed.
  local px
  if ok and kind ~= 0 then
    px = fmt(window_ttl(start, W, sliding, now))
    call('SET', KEYS[k], fmt(start), 'PX', px)
  end
  local da = a + 5
  k, a, o = k + 1, a + 5 + nc, o + 2
  for c = 0, nc - 1 do
    o = o + 1
    local value = out[o]
    if ok then
      local d = ARGV[da + c]
      local nv = value + tonumber(d)
      if nv < 0 then nv = 0 end
      if kind ~= 0 or not vals[k] then
        px = px or fmt(window_ttl(start, W, sliding, now))
        call('SET', KEYS[k], fmt(nv), 'PX', px)
        if sliding and kind ~= 0 then call('SET', KEYS[k + 1], fmt(out[o + 1]), 'PX', px) end
      elseif nv ~= value then
        -- Current window: keep the key's TTL.
        if nv == 0 then call('SET', KEYS[k], '0', 'KEEPTTL') else call('INCRBY', KEYS[k], d) end
      end
      out[o] = nv
    end
    if sliding then k, o = k + 2, o + 1 else k = k + 1 end
    if holds and read_back then
      o = o + 1
      if freed and freed[KEYS[hk]] then out[o] = out[o] - (mine and mine[hk] or 0) end
      hk = hk + 2
    end
  end
end

return short or out
`;
