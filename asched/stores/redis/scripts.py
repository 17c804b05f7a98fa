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

This module holds the prelude and the scripts that write and list tasks; the
lease scripts are in :mod:`asched.stores.redis.lease_scripts`, those of the
start rules in :mod:`asched.stores.redis.rule_scripts`.
"""

from __future__ import annotations

from asched.stores.redis.lease_scripts import LEASE_SCRIPTS
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
-- Whether a task's stored state says a user paused it (the state record is
-- small: the data and result are kept apart).
local function user_paused(k)
  local r = redis.call('HGET', k, 'r')
  return r and cjson.decode(r)['user_paused'] == true
end

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

#: Scripts by name, each with the prelude in front.
SCRIPTS: dict[str, str] = {
    name: PRELUDE + body
    for name, body in {
        "insert": INSERT,
        "save": SAVE,
        **LEASE_SCRIPTS,
        "list": LIST,
        "sweep": SWEEP,
        "purge": PURGE_FINISHED,
        "open": OPEN,
        **RULE_SCRIPTS,
    }.items()
}
