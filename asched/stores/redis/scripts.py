"""The store's Lua scripts.  Each runs atomically inside Redis.

Every script gets the hash-tagged key base (``{prefix}``) as ``ARGV[1]`` and
the ``meta`` key as ``KEYS[1]`` (so a cluster client routes it to the right
slot); the other key names are built from the base as ``keys`` documents.

Times are float seconds.  The caller passes them as Python ``repr`` strings and
they are stored and returned as those very strings, never re-formatted by Lua
(whose ``tostring`` keeps only 14 digits).  With the server clock, ``TIME`` is
read inside the script and the lease expiry is formatted to the microsecond.

Lease rules are those of :mod:`asched.stores.base`: a task is in ``due:<p>``
exactly when its state is claimable and no owner is recorded on it; a task
with an owner is in ``leased`` (score: expiry) and in ``o:<owner>``.
"""

from __future__ import annotations

from asched.stores.redis.rule_scripts import RULE_SCRIPTS

PRELUDE = r"""
local B = ARGV[1]
local CLAIMABLE = {QUEUED = true, SCHEDULED = true, RETRYING = true, RUNNING = true}
local TERMINAL = {COMPLETED = true, FAILED = true, CANCELLED = true}
local ENDING = {QUEUED = true, COMPLETED = true, FAILED = true, CANCELLED = true}
local LEASED = B .. ':leased'
local ALL = B .. ':all'
local IDEM = B .. ':idem'
local PURGE = B .. ':purge'
local FINTYPES = B .. ':fintypes'
local function fin_key(ty) return B .. ':fin:' .. ty end
local function tkey(id) return B .. ':t:' .. id end
local function due_key(p) return B .. ':due:' .. p end
local function state_key(s) return B .. ':s:' .. s end
local function owner_key(o) return B .. ':o:' .. o end

-- (now, expiry string) from the caller's clock or from Redis TIME.
local function clock(now_arg, expires_arg, lease_arg, server)
  if server == '1' then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
    return now, string.format('%.6f', now + tonumber(lease_arg))
  end
  return tonumber(now_arg), expires_arg
end

-- End the lease recorded on a task; a claimable task goes back to its due set.
local function unlease(k, id, owner, s, p, d, m)
  redis.call('HDEL', k, 'o', 'x')
  redis.call('ZREM', LEASED, id)
  redis.call('SREM', owner_key(owner), id)
  if CLAIMABLE[s] then redis.call('ZADD', due_key(p), d, m) end
end

-- Lease a task to owner; returns the new token.
local function grant(k, id, owner, expires, s, o, tok, p, m)
  if o then
    if o ~= owner then redis.call('SREM', owner_key(o), id) end
  elseif CLAIMABLE[s] then
    redis.call('ZREM', due_key(p), m)
  end
  local token = (tonumber(tok) or 0) + 1
  redis.call('HSET', k, 'o', owner, 'k', token, 'x', expires)
  redis.call('ZADD', LEASED, expires, id)
  redis.call('SADD', owner_key(owner), id)
  return token
end

-- Expired leases end: their tasks are free again.
local function reap(now, max)
  local ids = redis.call('ZRANGEBYSCORE', LEASED, '-inf', now, 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    local k = tkey(id)
    local c = redis.call('HMGET', k, 'o', 's', 'p', 'd', 'm')
    if c[1] then
      unlease(k, id, c[1], c[2], c[3], c[4], c[5])
    else
      redis.call('ZREM', LEASED, id)
    end
  end
end

-- A finished task is purged ttl_ms from now (0: kept).
-- A finished task is indexed by its type and finish time, for purging; with a
-- store ttl its hash also expires an hour after the sweeper would purge it.
local function retain(k, m, s, finished, ttl_ms)
  if TERMINAL[s] then
    local ty = redis.call('HGET', k, 'ty')
    redis.call('ZADD', fin_key(ty), finished, m)
    redis.call('SADD', FINTYPES, ty)
    if ttl_ms > 0 then redis.call('PEXPIRE', k, ttl_ms + 3600000) end
  end
end

-- Delete a finished task and every index entry of it.
local function forget(m)
  local id = string.sub(m, 14)
  local k = tkey(id)
  local c = redis.call('HMGET', k, 's', 'ik')
  if c[1] then
    redis.call('ZREM', state_key(c[1]), m)
    if c[2] then redis.call('HDEL', IDEM, c[2]) end
  else
    for s, _ in pairs(TERMINAL) do redis.call('ZREM', state_key(s), m) end
  end
  redis.call('ZREM', ALL, m)
  redis.call('ZREM', PURGE, m)
  redis.call('DEL', k)
end
"""

#: ARGV: base, again (1 when retrying after a lost reply), now_s, ttl_ms, n, then n x
#: (id, state, due_s, priority, type, idempotency key or '', record, mac,
#: data or '' (none: {}), its mac, result or '', its mac).  The data goes in
#: field D, never written again.
#: Returns {} or {field, value} naming the first clash (nothing is written then).
INSERT = r"""
local again, now, ttl = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local n, F = tonumber(ARGV[5]), 12
local done = {}
for i = 0, n - 1 do
  local b = 6 + i * F
  local id, ik = ARGV[b], ARGV[b + 5]
  local stored = redis.call('HGET', tkey(id), 'r')
  if stored then
    if again and stored == ARGV[b + 6] then done[i] = true else return {'task_id', id} end
  elseif ik ~= '' and redis.call('HEXISTS', IDEM, ik) == 1 then
    return {'idempotency_key', ik}
  end
end
local seq = redis.call('INCRBY', B .. ':seq', n) - n
for i = 0, n - 1 do
  seq = seq + 1
  if not done[i] then
    local b = 6 + i * F
    local id, s, d, p = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    local ik = ARGV[b + 5]
    local k = tkey(id)
    local m = p .. string.format('%012d', seq) .. id
    redis.call('HSET', k, 's', s, 'd', d, 'p', p, 'm', m, 'ty', ARGV[b + 4],
      'r', ARGV[b + 6], 'h', ARGV[b + 7])
    redis.call('HSET', k, 'v', '2')
    if ARGV[b + 8] ~= '' then redis.call('HSET', k, 'D', ARGV[b + 8], 'hd', ARGV[b + 9]) end
    if ARGV[b + 10] ~= '' then redis.call('HSET', k, 'R', ARGV[b + 10], 'hr', ARGV[b + 11]) end
    redis.call('ZADD', ALL, d, m)
    redis.call('ZADD', state_key(s), d, m)
    if CLAIMABLE[s] then redis.call('ZADD', due_key(p), d, m) end
    if ik ~= '' then
      redis.call('HSET', IDEM, ik, id)
      redis.call('HSET', k, 'ik', ik)
    end
    retain(k, m, s, now, ttl)
  end
end
return {}
"""

#: ARGV: base, again, now_s, ttl_ms, n, then n x
#: (id, token or '', owner or '', state, due_s, priority, record, mac,
#: result or '' (none), its mac, data or '', its mac).  The record is the state
#: only: the data (D) is never rewritten, and a result goes in its own field (R).
#: A task an older asched inserted (no field v) still has its data inside r: its
#: save is left out unless it brings the data along (the caller resends it so).
#: Returns {ids whose fenced write was refused, ids left out for their data}.
SAVE = r"""
local again, now, ttl = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local n, F = tonumber(ARGV[5]), 13
local refused, legacy = {}, {}
for i = 0, n - 1 do
  local b = 6 + i * F
  local id, token, owner = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local s, d, p, r = ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local k = tkey(id)
  local c = redis.call('HMGET', k, 's', 'd', 'p', 'm', 'o', 'k', 'v')
  local os, od, op, om, oo = c[1], c[2], c[3], c[4], c[5]
  local held = token == '' or (oo == owner and c[6] == token)
  if os and TERMINAL[os] then
    -- A finished task is never written again; a fenced write is refused, unless
    -- it is a retry of the very write that finished it.
    local landed = again and redis.call('HGET', k, 'r') == r
    if token ~= '' and not landed then refused[#refused + 1] = id end
  elseif os and held and not c[7] and ARGV[b + 10] == '' then
    legacy[#legacy + 1] = id
  elseif not os then
    if token ~= '' then refused[#refused + 1] = id end
  elseif not held then
    -- A retried write that already landed (and ended its lease) is not refused.
    if not (again and redis.call('HGET', k, 'r') == r) then refused[#refused + 1] = id end
  else
    local m = om
    if op ~= p then m = p .. string.sub(om, 2) end
    local leased = oo ~= false
    if not leased and CLAIMABLE[os] then redis.call('ZREM', due_key(op), om) end
    if leased and ENDING[s] then
      redis.call('HDEL', k, 'o', 'x')
      redis.call('ZREM', LEASED, id)
      redis.call('SREM', owner_key(oo), id)
      leased = false
    end
    if not leased and CLAIMABLE[s] then redis.call('ZADD', due_key(p), d, m) end
    if os ~= s or m ~= om then redis.call('ZREM', state_key(os), om) end
    if os ~= s or m ~= om or od ~= d then redis.call('ZADD', state_key(s), d, m) end
    if m ~= om then redis.call('ZREM', ALL, om) end
    if m ~= om or od ~= d then redis.call('ZADD', ALL, d, m) end
    redis.call('HSET', k, 's', s, 'd', d, 'p', p, 'm', m, 'r', r, 'h', ARGV[b + 7])
    if ARGV[b + 8] ~= '' then redis.call('HSET', k, 'R', ARGV[b + 8], 'hr', ARGV[b + 9]) end
    if ARGV[b + 10] ~= '' then
      redis.call('HSET', k, 'D', ARGV[b + 10], 'hd', ARGV[b + 11], 'v', '2')
    end
    local finished = ARGV[b + 12]
    if finished == '' then finished = now end
    retain(k, m, s, finished, ttl)
  end
end
return {refused, legacy}
"""

#: ARGV: base, owner, now_s, expires_s, lease_s, server clock (0/1), ids...
#: Returns {expires, id1, token1, id2, token2, ...}.
CLAIM = r"""
local owner = ARGV[2]
local now, expires = clock(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local out = {expires}
for i = 7, #ARGV do
  local id = ARGV[i]
  local k = tkey(id)
  local c = redis.call('HMGET', k, 's', 'o', 'x', 'k', 'p', 'm')
  local s, o = c[1], c[2]
  if s and not TERMINAL[s] and (not o or o == owner or tonumber(c[3]) <= now) then
    out[#out + 1] = id
    out[#out + 1] = grant(k, id, owner, expires, s, o, c[4], c[5], c[6])
  end
end
return out
"""

#: ARGV: base, owner, now_s, expires_s, lease_s, server clock, limit, reap max,
#: the task types to claim (a JSON array; '' for every type),
#: full (1: replace the owner's skip set, 0: change it), its size after this call,
#: how many ids to add, the ids to add, then the ids to remove.
#: The skip set ``x:<owner>`` holds the ids the owner excludes, so a call sends
#: only what changed since the last one.  Expired leases are reaped first.
#: Returns {expires, then per task: id, token, then the six stored fields (see
#: ``STORED_FIELDS`` in the store)}, best first, or
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

#: ARGV: base, index key, type or '', limit (-1: all).  Read-only.
#: Returns {member, then the six stored fields, ...} in index order.
LIST = r"""
local index, ty, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local out, found, off = {}, 0, 0
while limit < 0 or found < limit do
  local ms = redis.call('ZRANGE', index, off, off + 499)
  if #ms == 0 then break end
  off = off + 500
  for _, m in ipairs(ms) do
    if limit >= 0 and found >= limit then break end
    local c = redis.call('HMGET', tkey(string.sub(m, 14)), 'ty', 'r', 'h', 'D', 'hd', 'R', 'hr')
    if c[2] and (ty == '' or c[1] == ty) then
      out[#out + 1] = m
      for j = 2, 7 do out[#out + 1] = c[j] end
      found = found + 1
    end
  end
end
return out
"""

#: ARGV: base, now_s, max.  Removes finished tasks whose retention ran out.
#: Returns how many were purged.
SWEEP = r"""
local now, max = tonumber(ARGV[2]), tonumber(ARGV[3])
local ms = redis.call('ZRANGEBYSCORE', PURGE, '-inf', now, 'LIMIT', 0, max)
for _, m in ipairs(ms) do forget(m) end
return #ms
"""

#: ARGV: base, layout version, new epoch.  Returns {epoch, created (1/0), layout}.
OPEN = r"""
local created = redis.call('HSETNX', KEYS[1], 'epoch', ARGV[3])
if created == 1 then redis.call('HSET', KEYS[1], 'layout', ARGV[2]) end
return {redis.call('HGET', KEYS[1], 'epoch'), created, redis.call('HGET', KEYS[1], 'layout')}
"""

#: Scripts by name, each with the prelude in front.
#: ARGV: base, finished at or before (s), limit, mode ('all', 'only' or 'except'),
#: then the task types the mode names.  Returns how many tasks were deleted.
PURGE_FINISHED = r"""
local before, limit, mode = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local named = {}
for i = 5, #ARGV do named[ARGV[i]] = true end
local done = 0
for _, ty in ipairs(redis.call('SMEMBERS', FINTYPES)) do
  if done >= limit then break end
  if mode == 'all' or (mode == 'only') == (named[ty] == true) then
    local key = fin_key(ty)
    local ms = redis.call('ZRANGEBYSCORE', key, '-inf', before, 'LIMIT', 0, limit - done)
    for _, m in ipairs(ms) do forget(m) end
    if #ms > 0 then redis.call('ZREM', key, unpack(ms)) end
    done = done + #ms
    if redis.call('ZCARD', key) == 0 then redis.call('SREM', FINTYPES, ty) end
  end
end
return done
"""

SCRIPTS: dict[str, str] = {
    name: PRELUDE + body
    for name, body in {
        "insert": INSERT,
        "save": SAVE,
        "claim": CLAIM,
        "claim_due": CLAIM_DUE,
        "next_due": NEXT_DUE,
        "renew": RENEW,
        "release": RELEASE,
        "list": LIST,
        "sweep": SWEEP,
        "purge": PURGE_FINISHED,
        "open": OPEN,
        **RULE_SCRIPTS,
    }.items()
}
