import { LUA_HELD_PRUNED, LUA_TICKETS, LUA_WINDOW_OF_START, LUA_WINDOW_TTL, PRELUDE } from "./prelude.js";

/**
 * `adjust`: window-guarded deltas plus an optional lease release, atomically, exactly once per ticket
 * (docs/store-contract.md, "adjust" and "Tickets"). The release runs first, so the answered `held` reflects it.
 *
 * KEYS, in sections (see the prelude):
 * - strings, `KEYS[1..ns]` (one MGET): the ticket key when the call has one; then per window `P{base}:window`,
 *   then per counter `P{base}:<name>` and, in a sliding window, `P{base}:<name>:prev`
 * - with read-back only: per counter of each window with holds, `P{base}:<name>:holds`, `P{base}:<name>:held`
 * - per released gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 * - per released hold: `P{base}:<name>:holds`, `P{base}:<name>:held`
 *
 * ARGV (numbers in base 36):
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` lease id to release (`""` for none)
 * - `ARGV[3]` `windows + 4096 × released gauges + 4096² × released holds + 4096³ × (read-back + 2 × ticket)`:
 *   read-back 1 answers the states after the call (0: only now, released, the ticket state and applied; no hold
 *   keys are passed for the adjusted counters); ticket 0 none, 1 settle (apply unless finished), 2 release (apply only
 *   while open), 3 discard (store-internal compensation of an admission known to be applied: apply only while open,
 *   then delete the ticket instead of marking it finished, so the id can be admitted again)
 * - `ARGV[4]` how long the finished mark is kept, ms
 * - per window: `1024 × windowMs + 16 × counters + 4 × guard + flags` (flags: 1 sliding + 2 holds; guard 0 none,
 *   1 expected start, 2 the window the open ticket's admission applied to), the expected start (guard 1 only), then
 *   one delta per counter, zigzag-encoded (`2d` for d ≥ 0, `-2d - 1` below)
 *
 * Lean settle (mode ≥ 8: the engine's settle: a ticket in settle mode, no read-back, nothing released, every window
 * fixed and guarded by its expected start; `encodeAdjust` chooses it): `ARGV[3]` is `windows + 4096³ × 8`, and per
 * window the expected start (decimal, as stored), `64 × (expected start + windowMs) + counters`, then one zigzag
 * delta per counter. Same semantics and reply as the general form, fewer steps: the stored start is compared with
 * the expected one as a string (parsed only when they differ), the window's end comes with the call, and no table
 * is built but the reply.
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
export const ADJUST_LUA = `${PRELUDE}${LUA_TICKETS}${LUA_WINDOW_TTL}${LUA_HELD_PRUNED}
local now, tested = clock(ARGV[1])
local id = ARGV[2]
local shape = tonumber(ARGV[3], 36)
local nw = shape % 4096
shape = (shape - nw) / 4096
local nrg = shape % 4096
shape = (shape - nrg) / 4096
local nrh = shape % 4096
local mode = (shape - nrh) / 4096
local keep = tonumber(ARGV[4], 36)

if mode >= 8 then
  -- Lean settle: KEYS are the ticket, then per window its start key and its counter keys.
  local ns, a = 1, 5
  for _ = 1, nw do
    local m = tonumber(ARGV[a + 1], 36)
    local nc = m % 64
    ns, a = ns + 1 + nc, a + 2 + nc
  end
  local vals = call('MGET', unpack(KEYS, 1, ns))
  local raw = vals[1]
  local tstate = ticket_state(KEYS[1], raw, now, tested)
  local out = { now, 0, tstate }
  local missing
  if not raw then missing = { KEYS[1] } end
  if tstate == 3 then
    -- Finished: nothing applies (the mark is renewed below).
    for w = 1, nw do out[w + 3] = 0 end
    check_missing(missing)
  else
    -- Read and validate every window and counter before the first write; per window, applied (1/0) in the reply.
    local k
    k, a = 2, 5
    for w = 1, nw do
      local key, sv = KEYS[k], vals[k]
      local m = tonumber(ARGV[a + 1], 36)
      local nc = m % 64
      local til = (m - nc) / 64
      local ok = 0
      if sv == ARGV[a] then
        if now < til then ok = 1 end
      elseif sv then
        local stored = int(key, sv)
        local W = til - tonumber(ARGV[a])
        if stored - now > W then corrupt(key, 'starts more than one window in the future') end
      else
        missing = missing or {}
        missing[#missing + 1] = key
      end
      out[w + 3] = ok
      for c = 1, nc do
        local rv = vals[k + c]
        if rv then
          local v = tonumber(rv)
          if not v or v < 0 or v >= 1e17 or v % 1 ~= 0 or #rv ~= ndigits(v) then corrupt(KEYS[k + c], 'holds a non-integer value') end
        else
          missing = missing or {}
          missing[#missing + 1] = KEYS[k + c]
        end
      end
      k, a = k + 1 + nc, a + 2 + nc
    end
    check_missing(missing)
    -- Apply: deltas on the current window (INCRBY keeps the key's TTL; floor 0; a missing counter of a live window
    -- gets the window's remaining life).
    k, a = 2, 5
    for w = 1, nw do
      local m = tonumber(ARGV[a + 1], 36)
      local nc = m % 64
      if out[w + 3] == 1 then
        for c = 1, nc do
          local z = tonumber(ARGV[a + 1 + c], 36)
          if z > 0 then
            local d = z % 2 == 0 and z / 2 or -(z + 1) / 2
            local ck, rv = KEYS[k + c], vals[k + c]
            if not rv then
              if d > 0 then
                local px = (m - nc) / 64 - now
                call('SET', ck, d, 'PX', px > 0 and px or 1)
              end
            elseif d > 0 or tonumber(rv) + d > 0 then
              call('INCRBY', ck, d)
            elseif rv ~= '0' then
              call('SET', ck, '0', 'KEEPTTL')
            end
          end
        end
      end
      k, a = k + 1 + nc, a + 2 + nc
    end
  end
  call('SET', KEYS[1], ticket_value(nil, now + keep, tested), 'PX', keep)
  return out
end

local read_back = mode % 2 == 1
local tmode = (mode - mode % 2) / 2

-- Layout pass over the window descriptions: per window (5 slots in wt) its length, counters, flags, guard and the
-- argument of its first delta (the expected start, when guarded by it, is the argument before); the KEYS sections.
local wt = {}
local ns, nh, a = tmode > 0 and 1 or 0, 0, 5
for w = 1, nw do
  local m = tonumber(ARGV[a], 36)
  local f = m % 4
  local rest = (m - f) / 4
  local guard = rest % 4
  rest = (rest - guard) / 4
  local nc = rest % 64
  if guard == 1 then a = a + 1 end
  local j = 5 * w
  wt[j - 4], wt[j - 3], wt[j - 2], wt[j - 1], wt[j] = (rest - nc) / 64, nc, f, guard, a + 1
  if f % 2 == 1 then ns = ns + 1 + 2 * nc else ns = ns + 1 + nc end
  if read_back and f >= 2 then nh = nh + nc end
  a = a + 1 + nc
end

local vals = ns > 0 and call('MGET', unpack(KEYS, 1, ns)) or {}
local missing
local k, tstate, skip, topen = 1, 0, false, nil
if tmode > 0 then
  local raw = vals[1]
  tstate = ticket_state(KEYS[1], raw, now, tested)
  if tmode == 1 then skip = tstate == 3 else skip = tstate ~= 1 end
  if skip and not read_back then
    -- Nothing to apply and nothing to read back: mark the ticket and answer at once.
    if not raw then check_missing({ KEYS[1] }) end
    if tmode ~= 3 then call('SET', KEYS[1], ticket_value(nil, now + keep, tested), 'PX', keep) end
    local short = { now, 0, tstate }
    for w = 1, nw do short[w + 3] = 0 end
    return short
  end
  if not raw then missing = { KEYS[1] } elseif tstate == 1 and tmode > 1 then topen = ticket_at(KEYS[1], raw) end
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
local o, hk = 3, ns + 1
for w = 1, nw do
  local j = 5 * w
  local W, nc, f, guard = wt[j - 4], wt[j - 3], wt[j - 2], wt[j - 1]
  local sliding, holds = f % 2 == 1, f >= 2
  local key, raw = KEYS[k], vals[k]
  local stored = int(key, raw)${LUA_WINDOW_OF_START}
  kinds[w] = kind
  local ok = false
  if skip then
    ok = false
  elseif guard == 0 then
    ok = true
  elseif kind == 0 then
    if guard == 1 then ok = stored == tonumber(ARGV[wt[j] - 1], 36) else ok = topen ~= nil and stored <= topen end
  end
  out[o + 1], out[o + 2] = ok and 1 or 0, start
  k, o = k + 1, o + 2
  for _ = 1, nc do
    local rv = vals[k]
    local v, p = 0, 0
    if rv then
      -- int(), inlined: this runs for every counter of every settle.
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
  call('ZREMRANGEBYSCORE', KEYS[rk], '-inf', now)
  rk = rk + 1
end
for _ = 1, nrh do
  -- A read of this lease's entry type-checks both keys (WRONGTYPE) before the first write; pruning is the
  -- admissions' job.
  if not checked or checked[KEYS[rk]] ~= KEYS[rk + 1] then
    call('ZSCORE', KEYS[rk], id)
    local m = call('HGET', KEYS[rk + 1], id)
    if m then int(KEYS[rk + 1], m) end
  end
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
if tmode == 3 then
  if not skip then call('DEL', KEYS[1]) end
elseif tmode > 0 then
  call('SET', KEYS[1], ticket_value(nil, now + keep, tested), 'PX', keep)
end

-- Without read-back the reply is now, released, the ticket state, and applied per window.
local short
if not read_back then short = { now, released, tstate } end
k, o, hk = tmode > 0 and 2 or 1, 3, ns + 1
for w = 1, nw do
  local j = 5 * w
  local W, nc, f = wt[j - 4], wt[j - 3], wt[j - 2]
  local da = wt[j]
  local sliding, holds = f % 2 == 1, f >= 2
  local ok, start, kind = out[o + 1] == 1, out[o + 2], kinds[w]
  if short then short[w + 3] = out[o + 1] end
  -- The keys' TTL, computed when first needed.
  local px
  if ok and kind ~= 0 then
    px = window_ttl(start, W, sliding, now)
    call('SET', KEYS[k], start, 'PX', px)
  end
  k, o = k + 1, o + 2
  for c = 0, nc - 1 do
    o = o + 1
    local value = out[o]
    if ok then
      local z = tonumber(ARGV[da + c], 36)
      local d = z % 2 == 0 and z / 2 or -(z + 1) / 2
      local nv = value + d
      if nv < 0 then nv = 0 end
      if kind ~= 0 or not vals[k] then
        px = px or window_ttl(start, W, sliding, now)
        call('SET', KEYS[k], nv, 'PX', px)
        if sliding and kind ~= 0 then call('SET', KEYS[k + 1], out[o + 1], 'PX', px) end
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
