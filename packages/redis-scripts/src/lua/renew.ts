import { LUA_EXTEND, LUA_TICKETS, PRELUDE } from "./prelude.js";

/**
 * `renew`: sets the expiry of every live entry of a lease to now + ttl (docs/store-contract.md, "Leases"), and of
 * its ticket while open. An expired entry is not revived.
 *
 * KEYS, in order:
 * - per gauge: `P{base}:<name>` (sorted set lease id -> expiry)
 * - per hold: `P{base}:<name>:holds` (sorted set lease id -> expiry), `P{base}:<name>:held` (hash)
 * - the ticket key, when ARGV[6] is `1`
 *
 * ARGV (numbers in base 36):
 * - `ARGV[1]` test clock in ms (`""` in production: server TIME)
 * - `ARGV[2]` lease id
 * - `ARGV[3]` new TTL in ms
 * - `ARGV[4]` number of gauges, `ARGV[5]` number of holds
 * - `ARGV[6]` `1` when the last key is the lease's ticket
 *
 * Reply: { now, number of gauge and hold entries renewed, 1 when an open ticket was renewed else 0 }.
 */
export const RENEW_LUA = `${PRELUDE}${LUA_TICKETS}${LUA_EXTEND}
local now, tested = clock(ARGV[1])
local id = ARGV[2]
local ttl = tonumber(ARGV[3], 36)
local ng = tonumber(ARGV[4], 36)
local nh = tonumber(ARGV[5], 36)
local renewed = 0

local function renew_in(zkey)
  local score = call('ZSCORE', zkey, id)
  if score and tonumber(score) > now then
    call('ZADD', zkey, 'XX', now + ttl, id)
    extend(zkey, ttl)
    return true
  end
  return false
end

-- Type-check every key before the first write.
for i = 1, ng + 2 * nh do
  local t = call('TYPE', KEYS[i])['ok']
  local want = 'zset'
  if i > ng and (i - ng) % 2 == 0 then want = 'hash' end
  if t ~= 'none' and t ~= want then
    error({ err = 'WRONGTYPE ' .. KEYS[i] .. ' is a ' .. t .. ', expected a ' .. want })
  end
end
local ticket, raw = 0, nil
local tkey = KEYS[ng + 2 * nh + 1]
if ARGV[6] == '1' then
  raw = call('GET', tkey)
  if ticket_state(tkey, raw, now, tested) == 1 then ticket = 1 end
end

for g = 1, ng do
  if renew_in(KEYS[g]) then renewed = renewed + 1 end
end
for h = 1, nh do
  local holds, held = KEYS[ng + 2 * h - 1], KEYS[ng + 2 * h]
  if renew_in(holds) then
    extend(held, ttl)
    renewed = renewed + 1
  end
end
if ticket == 1 then
  if tested then
    call('SET', tkey, ticket_value(ticket_at(tkey, raw), now + ttl, true), 'PX', ttl)
  else
    call('PEXPIRE', tkey, ttl)
  end
end

return { now, renewed, ticket }
`;
