import { PRELUDE } from "./prelude.js";

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
 * ARGV:
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` ns, `ARGV[3]` nh (counters with hold keys), `ARGV[4]` number of windows, `ARGV[5]` number of gauges
 * - per window: windowMs, flags (1 sliding + 2 holds), number of counters
 *
 * Reply (flat integer array): now, then per window: start, then per counter: value, previous (sliding windows
 * only), held (windows with holds only); then per gauge: inFlight, earliest expiry (-1 = none).
 */
export const READ_LUA = `${PRELUDE}
local now = clock(ARGV[1])
local ns, nh, nw, ng = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local vals = ns > 0 and call('MGET', unpack(KEYS, 1, ns)) or {}
local holds_in_use = nh > 0 and call('EXISTS', unpack(KEYS, ns + 1, ns + 2 * nh)) > 0
local missing
local out = { now }
local o, k, a, hk = 1, 1, 6, ns + 1
for _ = 1, nw do
  local W, flags, nc = tonumber(ARGV[a]), ARGV[a + 1], tonumber(ARGV[a + 2])
  local sliding, holds = flags == '1' or flags == '3', flags == '2' or flags == '3'
  local raw = vals[k]
  if not raw then missing = missing or {}; missing[#missing + 1] = KEYS[k] end
  local start, kind = roll(KEYS[k], int(KEYS[k], raw), W, sliding, now)
  o = o + 1
  out[o] = start
  k, a = k + 1, a + 3
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
