import { LUA_HELD_LIVE, LUA_WINDOW_OF_START, PRELUDE } from "./prelude.js";

/**
 * `read`: the states `admit` would answer, without writing anything (docs/store-contract.md, "read").
 * Expired or absent windows read as zero with start = now; expired holds and gauge entries are skipped.
 *
 * KEYS, in sections (see the prelude):
 * - strings, `KEYS[1..ns]` (one MGET): per window `P{base}:window`, then per counter `P{base}:<name>` and, in a
 *   sliding window, `P{base}:<name>:prev`
 * - per counter of each window with holds: `P{base}:<name>:holds`, `P{base}:<name>:held`
 * - per gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 *
 * ARGV (numbers in base 36):
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` `65536 × windows + gauges`
 * - per window: `1024 × windowMs + 4 × counters + flags` (flags: 1 sliding + 2 holds)
 *
 * Reply (flat integer array): now, then per window: start, then per counter: value, previous (sliding windows
 * only), held (windows with holds only); then per gauge: inFlight, earliest expiry (-1 = none).
 */
export const READ_LUA = `${PRELUDE}${LUA_HELD_LIVE}
local now = clock(ARGV[1])
local shape = tonumber(ARGV[2], 36)
local ng = shape % 65536
local nw = (shape - ng) / 65536

-- Layout pass: per window its length, counters and flags (3 slots in wt); the sizes of the KEYS sections.
local wt = {}
local ns, nh = 0, 0
for w = 1, nw do
  local m = tonumber(ARGV[2 + w], 36)
  local f = m % 4
  local rest = (m - f) / 4
  local nc = rest % 256
  wt[3 * w - 2], wt[3 * w - 1], wt[3 * w] = (rest - nc) / 256, nc, f
  if f % 2 == 1 then ns = ns + 1 + 2 * nc else ns = ns + 1 + nc end
  if f >= 2 then nh = nh + nc end
end

local vals = ns > 0 and call('MGET', unpack(KEYS, 1, ns)) or {}
local holds_in_use = nh > 0 and call('EXISTS', unpack(KEYS, ns + 1, ns + 2 * nh)) > 0
local missing
local out = { now }
local o, k, hk = 1, 1, ns + 1
for w = 1, nw do
  local W, nc, f = wt[3 * w - 2], wt[3 * w - 1], wt[3 * w]
  local sliding, holds = f % 2 == 1, f >= 2
  local key, raw = KEYS[k], vals[k]
  local stored = int(key, raw)${LUA_WINDOW_OF_START}
  o = o + 1
  out[o] = start
  k = k + 1
  for _ = 1, nc do
    local rv = vals[k]
    local v, p = 0, 0
    if rv then v = int(KEYS[k], rv) else missing = missing or {}; missing[#missing + 1] = KEYS[k] end
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
    if holds then
      o = o + 1
      if holds_in_use then out[o] = held_live(KEYS[hk], KEYS[hk + 1], now) else out[o] = 0 end
      hk = hk + 2
    end
  end
end
check_missing(missing)

for g = ns + 2 * nh + 1, ns + 2 * nh + ng do
  local gk = KEYS[g]
  local live = call('ZCOUNT', gk, '(' .. fmt(now), '+inf')
  local first = call('ZRANGEBYSCORE', gk, '(' .. fmt(now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  out[o + 1] = live
  if first[2] then out[o + 2] = tonumber(first[2]) else out[o + 2] = -1 end
  o = o + 2
end

return out
`;
