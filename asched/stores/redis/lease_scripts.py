"""The Lua scripts of leases: claim, claim due tasks, the next due time, renew
(the heartbeat) and release.  Each runs atomically inside Redis.

They share the prelude of :mod:`asched.stores.redis.scripts` (its key names and
its ``clock``, ``grant``, ``unlease`` and ``reap`` functions) and its conventions:
the hash-tagged key base is ``ARGV[1]``, times are the caller's ``repr`` strings.
Lease rules are those of :mod:`asched.stores.base`.
"""

from __future__ import annotations

#: ARGV: base, owner, now_s, expires_s, lease_s, server clock (0/1), ids...
#: Returns {expires, id1, token1, id2, token2, ...}.  ``claim_start`` (leases for
#: attempts about to start) also passes over a task someone paused meanwhile.
_CLAIM = r"""
local owner = ARGV[2]
local now, expires = clock(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local out = {expires}
for i = 7, #ARGV do
  local id = ARGV[i]
  local k = tkey(id)
  local c = redis.call('HMGET', k, 's', 'o', 'x', 'k', 'p', 'm')
  local s, o = c[1], c[2]
  if s and not TERMINAL[s] and (not o or o == owner or tonumber(c[3]) <= now)%s then
    out[#out + 1] = id
    out[#out + 1] = grant(k, id, owner, expires, s, o, c[4], c[5], c[6])
  end
end
return out
"""
CLAIM = _CLAIM % ""
CLAIM_START = _CLAIM % "\n      and not (s == 'PAUSED' and user_paused(k))"

#: ARGV: base, owner, now_s, expires_s, lease_s, server clock, limit, reap max,
#: the task types to claim (a JSON array; '' for every type),
#: full (1: replace the owner's skip set, 0: change it), its size after this call,
#: how many ids to add, the ids to add, then the ids to remove.
#: The skip set ``x:<owner>`` holds the ids the owner excludes, so a call sends
#: only what changed since the last one.  Expired leases are reaped first.
#: Returns {expires, then per task: id, token, then the six stored fields (see
#: ``STORED_FIELDS`` in ``reads``)}, best first, or
#: {'resend'} when the skip set is not what the caller expects (send it whole).
CLAIM_DUE = r"""
local owner = ARGV[2]
local skip_key = B .. ':x:' .. owner
local adds = tonumber(ARGV[12])
if ARGV[10] == '1' then redis.call('DEL', skip_key) end
for i = 13, 12 + adds, 500 do
  redis.call('SADD', skip_key, unpack(ARGV, i, math.min(i + 499, 12 + adds)))
end
for i = 13 + adds, #ARGV, 500 do
  redis.call('SREM', skip_key, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
if redis.call('SCARD', skip_key) ~= tonumber(ARGV[11]) then return {'resend'} end
local types = nil
if ARGV[9] ~= '' then
  types = {}
  for _, t in ipairs(cjson.decode(ARGV[9])) do types[t] = true end
end
redis.call('PEXPIRE', skip_key, 600000)
local now, expires = clock(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local need = tonumber(ARGV[7])
reap(now, tonumber(ARGV[8]))
local function skipped(id) return redis.call('SISMEMBER', skip_key, id) == 1 end
local out = {expires}
for p = 0, 4 do
  if need <= 0 then break end
  local picked, off = {}, 0
  while need > 0 do
    local ms = redis.call('ZRANGEBYSCORE', due_key(p), '-inf', now, 'LIMIT', off, need + 16)
    if #ms == 0 then break end
    off = off + #ms
    for _, m in ipairs(ms) do
      local id = string.sub(m, 14)
      if need > 0 and not skipped(id)
          and (not types or types[redis.call('HGET', tkey(id), 'ty')]) then
        picked[#picked + 1] = m
        need = need - 1
      end
    end
  end
  for _, m in ipairs(picked) do
    local id = string.sub(m, 14)
    local k = tkey(id)
    local c = redis.call('HMGET', k, 's', 'k', 'r', 'h', 'D', 'hd', 'R', 'hr')
    if c[1] and CLAIMABLE[c[1]] then
      out[#out + 1] = id
      out[#out + 1] = grant(k, id, owner, expires, c[1], false, c[2], p, m)
      for j = 3, 8 do out[#out + 1] = c[j] end
    else
      redis.call('ZREM', due_key(p), m)  -- not claimable: it should not be here
    end
  end
end
return out
"""

#: ARGV: base, owner, now_s, server clock.  Read-only.
#: Returns the earliest time as its stored string, or false.
NEXT_DUE = r"""
local owner = ARGV[2]
local now = clock(ARGV[3], '', '0', ARGV[4])
local best, best_s = nil, false
local function consider(t, text)
  if best == nil or t < best then best, best_s = t, text end
end
for p = 0, 4 do
  local first = redis.call('ZRANGE', due_key(p), 0, 0, 'WITHSCORES')
  if #first > 0 then consider(tonumber(first[2]), first[2]) end
end
local off = 0
while true do
  local ids = redis.call('ZRANGE', LEASED, off, off + 99, 'WITHSCORES')
  if #ids == 0 then break end
  off = off + 100
  for i = 1, #ids, 2 do
    local x = tonumber(ids[i + 1])
    if x > now and best ~= nil and x >= best then return best_s end
    local c = redis.call('HMGET', tkey(ids[i]), 's', 'd', 'o')
    if c[1] and CLAIMABLE[c[1]] then
      local d = tonumber(c[2])
      if x <= now then
        consider(d, c[2])
      elseif c[3] ~= owner then
        if d >= x then consider(d, c[2]) else consider(x, ids[i + 1]) end
      end
    end
  end
end
return best_s
"""

#: ARGV: base, owner, now_s, expires_s, lease_s, server clock.
#: Returns {epoch marker or false, expires, {id, token, ...} extended, {id, ...} expired}.
RENEW = r"""
local owner = ARGV[2]
local now, expires = clock(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local extended, expired = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', owner_key(owner))) do
  local k = tkey(id)
  local c = redis.call('HMGET', k, 'o', 'x', 'k', 's', 'p', 'd', 'm')
  if c[1] ~= owner then
    redis.call('SREM', owner_key(owner), id)
  elseif tonumber(c[2]) > now then
    redis.call('HSET', k, 'x', expires)
    redis.call('ZADD', LEASED, expires, id)
    extended[#extended + 1] = id
    extended[#extended + 1] = c[3]
  else
    unlease(k, id, owner, c[4], c[5], c[6], c[7])
    expired[#expired + 1] = id
  end
end
return {redis.call('HGET', KEYS[1], 'epoch'), expires, extended, expired}
"""

#: ARGV: base, then (id, owner, token) per lease.  A lease no longer held is ignored.
RELEASE = r"""
for i = 2, #ARGV, 3 do
  local id, owner, token = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local k = tkey(id)
  local c = redis.call('HMGET', k, 'o', 'k', 's', 'p', 'd', 'm')
  if c[1] == owner and c[2] == token then unlease(k, id, owner, c[3], c[4], c[5], c[6]) end
end
return 0
"""

#: The lease scripts by name (the prelude is put in front by ``scripts``).
LEASE_SCRIPTS: dict[str, str] = {
    "claim": CLAIM,
    "claim_start": CLAIM_START,
    "claim_due": CLAIM_DUE,
    "next_due": NEXT_DUE,
    "renew": RENEW,
    "release": RELEASE,
}
