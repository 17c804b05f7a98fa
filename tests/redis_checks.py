"""Checks that a RedisStore's indexes agree with its task hashes (see asched.stores.redis.keys)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import redis

CLAIMABLE = {b"QUEUED", b"SCHEDULED", b"RETRYING", b"RUNNING"}


def check_redis_indexes(url: str) -> None:
    parts = urlsplit(url)
    base = "{" + parse_qs(parts.query)["prefix"][0] + "}"
    client = redis.Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)
    try:
        _check(client, base)
    finally:
        client.close()


def _zset(client: redis.Redis, key: str) -> dict[bytes, float]:
    return dict(client.zrange(key, 0, -1, withscores=True))


def _check(client: redis.Redis, base: str) -> None:
    expected: dict[str, dict[bytes, float]] = {}
    for key in client.scan_iter(match=f"{base}:t:*", count=1000):
        task = client.hgetall(key)
        task_id = key.decode()[len(base) + 3 :]
        member, due = task[b"m"], float(task[b"d"])
        assert member[13:].decode() == task_id, (key, member)
        assert member[:1] == task[b"p"], (key, member)
        state = task[b"s"].decode()
        for index in (f"{base}:all", f"{base}:s:{state}"):
            expected.setdefault(index, {})[member] = due
        owner = task.get(b"o")
        if owner is None:
            assert b"x" not in task, key
            if task[b"s"] in CLAIMABLE:
                expected.setdefault(f"{base}:due:{task[b'p'].decode()}", {})[member] = due
        else:
            expected.setdefault(f"{base}:leased", {})[task_id.encode()] = float(task[b"x"])
            expected.setdefault(f"{base}:o:{owner.decode()}", {})[task_id.encode()] = 0.0
    for pattern in ("all", "s:*", "due:*", "leased", "o:*"):
        for raw in client.scan_iter(match=f"{base}:{pattern}", count=1000):
            key = raw.decode()
            found = {m: 0.0 for m in client.smembers(key)} if ":o:" in key else _zset(client, key)
            assert found == expected.pop(key, {}), key
    assert expected == {}, f"indexes missing: {sorted(expected)}"
