"""The Lua scripts of the cluster-wide start rules (see :mod:`asched.stores.redis.rules`).

They share the prelude of :mod:`asched.stores.redis.scripts`.  Keys, under the
hash-tagged base ``B``:

* ``B:sl:<name>``  -- a concurrency slot: hash task id -> ``<token>|<sha1 of the
  record>``.  An entry is held while the task's lease has that token, is
  unexpired, and the task is RUNNING or still has the record it was claimed
  with (a save of any other state frees it); claims drop entries no longer held.
* ``B:rates``  -- hash rate budget key -> theoretical arrival time.
* ``B:brk:<name>`` -- a breaker record (hash; ``v`` counts its writes), and
  ``B:brks`` the set of breaker names.

Times are written as ``%.17g`` strings so they read back exactly.
"""

from __future__ import annotations

_HELPERS = r"""
local RATES = B .. ':rates'
local BRKS = B .. ':brks'
local function slot_key(name) return B .. ':sl:' .. name end
local function brk_key(name) return B .. ':brk:' .. name end
local function fmt(x) return string.format('%.17g', x) end

-- The stored record's digest: a slot entry remembers the record it was claimed with.
local function digest(k) return redis.sha1hex(redis.call('HGET', k, 'r') or '') end

-- Whether a slot entry of task id is still held at now.
local function holding(id, val, now)
  local sep = string.find(val, '|', 1, true)
  if not sep then return false end
  local k = tkey(id)
  local h = redis.call('HMGET', k, 'k', 'o', 'x', 's')
  if h[1] ~= string.sub(val, 1, sep - 1) or not h[2] or tonumber(h[3]) <= now then
    return false
  end
  return h[4] == 'RUNNING' or digest(k) == string.sub(val, sep + 1)
end
"""

#: ARGV: base, owner, now_s, expires_s, lease_s, server clock, n, then per task:
#: id, slot count, (name, limit) per slot, rate key or '', interval_s, tolerance_s,
#: breaker name or '', half-open trials.
#: Returns {expires, {id, token}..., {id, token, kind, name, reason, wake or ''}...,
#: {id, breaker, generation}..., {name, from, to, at, reason}..., {{field, value...}}...}.
CLAIM_START_LIMITED = r"""
local owner = ARGV[2]
local now, expires = clock(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local tasks, batch, i = {}, {}, 8
for t = 1, tonumber(ARGV[7]) do
  local task = {id = ARGV[i], slots = {}}
  local ns = tonumber(ARGV[i + 1])
  i = i + 2
  for j = 1, ns do
    task.slots[j] = {ARGV[i], tonumber(ARGV[i + 1])}
    i = i + 2
  end
  task.rate, task.interval, task.tolerance = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  task.breaker, task.trials = ARGV[i + 3], tonumber(ARGV[i + 4])
  i = i + 5
  tasks[t] = task
  batch[task.id] = true
end

local held = {}
local function count(name)
  if held[name] ~= nil then return held[name] end
  local c, entries = 0, redis.call('HGETALL', slot_key(name))
  for e = 1, #entries, 2 do
    local id = entries[e]
    if holding(id, entries[e + 1], now) then
      if not batch[id] then c = c + 1 end
    else
      redis.call('HDEL', slot_key(name), id)
    end
  end
  held[name] = c
  return c
end

local brks, trans = {}, {}
local function brk(name)
  if brks[name] then return brks[name] end
  local f = redis.call('HMGET', brk_key(name), 'state', 'generation', 'open_until_s',
    'trials', 'successes')
  local r = {state = f[1] or 'closed', generation = tonumber(f[2] or '0'),
    open_until = f[3] or '0', trials = tonumber(f[4] or '0'),
    successes = tonumber(f[5] or '0'), dirty = false}
  brks[name] = r
  return r
end
local function admit(name, trials)
  local r = brk(name)
  if r.state == 'open' and now >= tonumber(r.open_until) then
    local why = 'recovery time elapsed'
    trans[#trans + 1] = {name, 'open', 'half_open', r.open_until, why}
    r.state, r.generation, r.trials, r.successes = 'half_open', r.generation + 1, 0, 0
    r.changed, r.reason, r.dirty = r.open_until, why, true
  end
  if r.state == 'closed' then return nil end
  local why = "circuit '" .. name .. "' is open"
  if r.state == 'open' then return {'breaker', name, why, r.open_until} end
  if r.trials + r.successes < trials then
    r.trials, r.dirty = r.trials + 1, true
    return nil
  end
  return {'breaker', name, why .. ' (trials running)', ''}
end

local tats, granted, holds, admitted = {}, {}, {}, {}
for _, task in ipairs(tasks) do
  local id = task.id
  local k = tkey(id)
  local c = redis.call('HMGET', k, 's', 'o', 'x', 'k', 'p', 'm')
  local s, o = c[1], c[2]
  if s and not TERMINAL[s] and (not o or o == owner or tonumber(c[3]) <= now)
      and not (s == 'PAUSED' and user_paused(k)) then
    local hold = nil
    for _, sl in ipairs(task.slots) do
      if count(sl[1]) >= sl[2] then
        local sep = string.find(sl[1], ':', 1, true) or 0
        local why = string.format("concurrency %s '%s' is full (%d running)",
          string.sub(sl[1], 1, sep - 1), string.sub(sl[1], sep + 1), sl[2])
        hold = {'slot', sl[1], why, ''}
        break
      end
    end
    local tat = nil
    if not hold and task.rate ~= '' then
      tat = tats[task.rate] or tonumber(redis.call('HGET', RATES, task.rate) or '')
      if tat and now < tat - task.tolerance then
        local at = tat - task.tolerance
        hold = {'rate', task.rate,
          string.format("rate limit '%s': next start at %.3f", task.rate, at), fmt(at)}
      end
    end
    if not hold and task.breaker ~= '' then
      hold = admit(task.breaker, task.trials)
      if not hold then
        admitted[#admitted + 1] = {id, task.breaker, brk(task.breaker).generation}
      end
    end
    local token = grant(k, id, owner, expires, s, o, c[4], c[5], c[6])
    if hold then
      holds[#holds + 1] = {id, token, hold[1], hold[2], hold[3], hold[4]}
    else
      granted[#granted + 1] = {id, token}
      local entry = nil
      for _, sl in ipairs(task.slots) do
        held[sl[1]] = held[sl[1]] + 1
        entry = entry or (token .. '|' .. digest(k))
        redis.call('HSET', slot_key(sl[1]), id, entry)
      end
      if task.rate ~= '' then
        if not tat or tat < now then tat = now end
        tats[task.rate] = tat + task.interval
      end
    end
  end
end
for key, tat in pairs(tats) do redis.call('HSET', RATES, key, fmt(tat)) end
local records = {}
for name, r in pairs(brks) do
  if r.dirty then
    local key = brk_key(name)
    redis.call('HSET', key, 'state', r.state, 'generation', r.generation,
      'trials', r.trials, 'successes', r.successes)
    if r.changed then redis.call('HSET', key, 'changed_s', r.changed, 'reason', r.reason) end
    redis.call('HINCRBY', key, 'v', 1)
    redis.call('SADD', BRKS, name)
    records[#records + 1] = {name, redis.call('HGETALL', key)}
  end
end
return {expires, granted, holds, admitted, trans, records}
"""

#: ARGV: base, now_s, slot names...  Read-only.  Returns {name, held, ...}.
SLOTS_HELD = r"""
local now, out = tonumber(ARGV[2]), {}
for i = 3, #ARGV do
  local c, entries = 0, redis.call('HGETALL', slot_key(ARGV[i]))
  for e = 1, #entries, 2 do
    if holding(entries[e], entries[e + 1], now) then c = c + 1 end
  end
  if c > 0 then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = c
  end
end
return out
"""

#: ARGV: base, names... (none: every breaker).  Read-only.
#: Returns {{name, {field, value, ...}}, ...}.
BREAKER_READ = r"""
local names = {}
if #ARGV > 1 then
  for i = 2, #ARGV do names[#names + 1] = ARGV[i] end
else
  names = redis.call('SMEMBERS', BRKS)
end
local out = {}
for _, name in ipairs(names) do
  local f = redis.call('HGETALL', brk_key(name))
  if #f > 0 then out[#out + 1] = {name, f} end
end
return out
"""

#: ARGV: base, name, expected write count, then field, value pairs.
#: Writes only if nobody wrote the record since it was read; returns 1, else 0.
BREAKER_SWAP = r"""
local key = brk_key(ARGV[2])
if (redis.call('HGET', key, 'v') or '0') ~= ARGV[3] then return 0 end
redis.call('HSET', key, unpack(ARGV, 4))
redis.call('HINCRBY', key, 'v', 1)
redis.call('SADD', BRKS, ARGV[2])
return 1
"""

#: The rule scripts by name; :mod:`asched.stores.redis.scripts` puts the prelude in front.
RULE_SCRIPTS: dict[str, str] = {
    "claim_start_limited": _HELPERS + CLAIM_START_LIMITED,
    "slots_held": _HELPERS + SLOTS_HELD,
    "breaker_read": _HELPERS + BREAKER_READ,
    "breaker_swap": _HELPERS + BREAKER_SWAP,
}
