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
local a, k = 6, 1
local dkind, da, db = 0, 0, 0
local wins = {}
-- Read phase: one MGET for every window start, value and previous value; one EXISTS for every hold key.
local skeys, hkeys = {}, {}

for w = 1, nw do
  local win = { W = tonumber(ARGV[a]), sliding = ARGV[a + 1] == '1', wk = KEYS[k], counters = {} }
  local nc = tonumber(ARGV[a + 2])
  a = a + 3
  k = k + 1
  skeys[#skeys + 1] = win.wk
  win.si = #skeys
  for c = 1, nc do
    local ctr = { vk = KEYS[k], pk = KEYS[k + 1], hk = KEYS[k + 2], dk = KEYS[k + 3] }
    k = k + 4
    ctr.limit = tonumber(ARGV[a])
    ctr.amount = tonumber(ARGV[a + 1])
    ctr.hold = tonumber(ARGV[a + 2])
    ctr.enforce = ARGV[a + 3] == '1'
    a = a + 4
    skeys[#skeys + 1] = ctr.vk
    ctr.vi = #skeys
    if win.sliding then
      skeys[#skeys + 1] = ctr.pk
      ctr.pi = #skeys
    end
    hkeys[#hkeys + 1] = ctr.hk
    hkeys[#hkeys + 1] = ctr.dk
    win.counters[c] = ctr
  end
  wins[w] = win
end

local vals = load(skeys)
local holds_in_use = any_exists(hkeys)

for w = 1, nw do
  local win = wins[w]
  local W, sliding = win.W, win.sliding
  local start, kind = roll(int(win.wk, vals[win.si]), W, sliding, now)
  win.start, win.kind = start, kind
  local el = now - start
  for c, ctr in ipairs(win.counters) do
    local v = count(ctr.vk, vals[ctr.vi])
    local p = 0
    if sliding then p = count(ctr.pk, vals[ctr.pi]) end
    if kind == 1 then
      v, p = 0, 0
    elseif kind == 2 then
      v, p = 0, v
    end
    ctr.value, ctr.prev = v, p
    ctr.held, ctr.mine = 0, 0
    if holds_in_use and call('EXISTS', ctr.hk, ctr.dk) > 0 then
      ctr.held, ctr.mine = held_pruned(ctr.hk, ctr.dk, now, id)
    end
    if dkind == 0 and ctr.enforce then
      local add = ctr.amount + ctr.hold
      local used = v + ctr.held
      local over
      if sliding then
        -- used = p * (W - el) / W + v + held, compared exactly by multiplying through by W
        local lhs = p * (W - el) + (used + add) * W
        if add > 0 then over = lhs > ctr.limit * W else over = lhs >= ctr.limit * W end
      else
        if add > 0 then over = used + add > ctr.limit else over = used >= ctr.limit end
      end
      if over then dkind, da, db = 1, w - 1, c - 1 end
    end
  end
end

local gs = {}
for g = 1, ng do
  local gk = KEYS[k]
  k = k + 1
  local limit = tonumber(ARGV[a])
  local enforce = ARGV[a + 1] == '1'
  a = a + 2
  call('ZREMRANGEBYSCORE', gk, '-inf', fmt(now))
  local n = call('ZCARD', gk)
  if dkind == 0 and enforce and n + 1 > limit then dkind, da, db = 2, g - 1, 0 end
  gs[g] = { gk = gk, n = n }
end

local admitted = dkind == 0
local out = { admitted and 1 or 0, now, dkind, da, db }

for w = 1, nw do
  local win = wins[w]
  local span = win.W
  if win.sliding then span = 2 * win.W end
  local px = win.start + span - now
  if px < 1 then px = 1 end
  if win.kind ~= 0 then call('SET', win.wk, fmt(win.start), 'PX', fmt(px)) end
  out[#out + 1] = win.start
  for _, ctr in ipairs(win.counters) do
    local nv = ctr.value
    if admitted then nv = nv + ctr.amount end
    if win.kind ~= 0 or nv ~= ctr.value then call('SET', ctr.vk, fmt(nv), 'PX', fmt(px)) end
    if win.sliding and win.kind ~= 0 then call('SET', ctr.pk, fmt(ctr.prev), 'PX', fmt(px)) end
    local held = ctr.held
    if admitted and ctr.hold > 0 then
      call('ZADD', ctr.hk, fmt(now + ttl), id)
      call('HSET', ctr.dk, id, fmt(ctr.hold))
      extend(ctr.hk, ttl)
      extend(ctr.dk, ttl)
      held = held - ctr.mine + ctr.hold
    end
    out[#out + 1] = nv
    out[#out + 1] = ctr.prev
    out[#out + 1] = held
  end
end

for g = 1, ng do
  local gate = gs[g]
  local n = gate.n
  if admitted then
    n = n + call('ZADD', gate.gk, fmt(now + ttl), id)
    extend(gate.gk, ttl)
  end
  out[#out + 1] = n
  out[#out + 1] = earliest(gate.gk)
end

return out
`;
