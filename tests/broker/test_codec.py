"""The broker message codec, the broker settings and the redaction of credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from asched import SchedulerConfig
from asched.broker.codec import MessageCodec
from asched.broker.errors import MessageRejectedError, MessageTooLargeError
from asched.broker.link import redact
from asched.broker.names import BrokerNames, amqp_priority
from asched.errors import ConfigError
from asched.model import TaskPriority

MESSAGE = {"k": "task", "id": "t1", "data": {"text": "ñandú ✓"}, "n": [1, 2.5, None]}


def test_an_unsigned_message_round_trips_as_plain_json() -> None:
    codec = MessageCodec()
    body = codec.encode(MESSAGE)
    assert body.startswith(b"{")
    assert codec.decode(body) == MESSAGE


def test_a_signed_message_round_trips_with_the_same_key() -> None:
    body = MessageCodec("k1").encode(MESSAGE)
    assert MessageCodec("k1").decode(body) == MESSAGE
    assert MessageCodec(b"k1").decode(body) == MESSAGE


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (MessageCodec().encode(MESSAGE), "unsigned"),
        (MessageCodec("other key").encode(MESSAGE), "bad signature"),
        (MessageCodec("k1").encode(MESSAGE).replace(b"t1", b"t2"), "bad signature"),
        (b"0" * 64 + b"." + b'{"k": "task"}', "bad signature"),
    ],
)
def test_with_a_key_unsigned_forged_or_altered_messages_are_rejected(
    body: bytes, reason: str
) -> None:
    with pytest.raises(MessageRejectedError, match=reason):
        MessageCodec("k1").decode(body)


def test_without_a_key_a_signed_message_is_still_read() -> None:
    assert MessageCodec().decode(MessageCodec("k1").encode(MESSAGE)) == MESSAGE


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"not json", "not valid JSON"), (b"[1, 2]", "not a JSON object"), (b"\xff\xfe", "JSON")],
)
def test_what_is_not_a_json_object_is_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(MessageRejectedError, match=reason):
        MessageCodec().decode(body)


def test_the_size_limit_holds_both_ways() -> None:
    codec = MessageCodec(max_bytes=100)
    with pytest.raises(MessageTooLargeError, match="over the limit of 100"):
        codec.encode({"data": "x" * 100})
    with pytest.raises(MessageRejectedError, match="over the limit"):
        codec.decode(b'{"data": "' + b"x" * 100 + b'"}')
    assert codec.decode(codec.encode({"data": "x" * 50})) == {"data": "x" * 50}


def test_messages_are_never_pickled_objects() -> None:
    with pytest.raises(TypeError):
        MessageCodec().encode({"value": object()})


@pytest.mark.parametrize("secret", ["", b""])
def test_an_empty_secret_is_refused(secret: str | bytes) -> None:
    with pytest.raises(ValueError, match="secret"):
        MessageCodec(secret)


def test_priorities_map_onto_amqp_with_critical_highest() -> None:
    levels = [amqp_priority(p) for p in TaskPriority]
    assert levels == [4, 3, 2, 1, 0]
    names = BrokerNames("bot")
    assert (names.tasks, names.control, names.replies("s1")) == (
        "bot.tasks",
        "bot.control",
        "bot.replies.s1",
    )


def test_broker_settings_come_from_the_environment() -> None:
    env = {
        "ASCHED_BROKER": "amqp://bot:pw@127.0.0.1:5672/",
        "ASCHED_BROKER_PREFIX": "bot1",
        "ASCHED_BROKER_SECRET": "s",
    }
    config = SchedulerConfig.from_env(env)
    assert (config.broker, config.broker_prefix, config.broker_secret) == (
        "amqp://bot:pw@127.0.0.1:5672/",
        "bot1",
        "s",
    )
    assert "pw" not in repr(config) and "secret='s'" not in repr(config)
    assert SchedulerConfig().broker_prefix == "asched"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"broker": "redis://u:pw@127.0.0.1/"}, "broker"),
        ({"broker": 5}, "broker"),
        ({"broker_prefix": ""}, "broker_prefix"),
        ({"broker_prefix": "a b"}, "broker_prefix"),
        ({"broker_secret": ""}, "broker_secret"),
    ],
)
def test_bad_broker_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as caught:
        SchedulerConfig(**settings)  # type: ignore[arg-type]
    assert "pw" not in str(caught.value)


def test_credentials_are_redacted_wherever_a_url_appears() -> None:
    assert redact("amqp://bot:pw@127.0.0.1:5672/vh") == "amqp://bot:***@127.0.0.1:5672/vh"
    assert redact("failed: amqp://u:p@h/ refused") == "failed: amqp://u:***@h/ refused"
    assert redact("amqp://127.0.0.1/") == "amqp://127.0.0.1/"


async def test_a_distributed_handler_needs_a_broker_to_start() -> None:
    from asched import Scheduler

    scheduler = Scheduler()

    @scheduler.task("remote", executor="distributed")
    async def remote() -> None: ...

    with pytest.raises(ConfigError, match="broker"):
        await scheduler.start()


def test_reports_are_split_under_the_size_limit_and_oversized_ones_become_errors() -> None:
    import orjson

    from asched.broker.reports import split_reports

    def item(n: int, size: int) -> bytes:
        return orjson.dumps({"t": f"tok{n}", "id": f"t{n}", "s": "ok", "r": "x" * size})

    entries = [(item(n, 30), n) for n in range(6)] + [(item(6, 500), 6)]
    batches = split_reports(entries, limit=200)
    assert [tag for batch in batches for _, tag in batch] == list(range(7))
    assert all(sum(len(i) + 1 for i, _ in batch) <= 201 for batch in batches)
    oversized = orjson.loads(batches[-1][-1][0])
    assert (oversized["t"], oversized["s"], oversized["e"]["type"]) == (
        "tok6",
        "err",
        "MessageTooLargeError",
    )


def test_the_workers_table_names_every_heartbeat_field() -> None:
    from asched.broker.inspect import format_workers

    beat = {"worker": "w1", "host": "render1", "pid": 42, "prefetch": 20, "running": 3, "at": 90.0}
    table = format_workers([beat], now_s=100.0)
    header, row = table.splitlines()
    assert header.split()[:5] == ["worker", "host", "pid", "prefetch", "running"]
    assert row.split()[:5] == ["w1", "render1", "42", "20", "3"]
    assert "(10s ago)" in row
    assert format_workers([]) == "no broker workers heard"


def test_the_worker_commands_refuse_to_run_without_a_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from asched.cli import main

    (tmp_path / "plainapp.py").write_text("from asched import Scheduler\nscheduler = Scheduler()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASCHED_BROKER", raising=False)
    assert main(["worker", "plainapp:scheduler"]) == 2
    assert "no broker" in capsys.readouterr().err
    assert main(["worker", "plainapp:scheduler", "--broker", "redis://u:pw@127.0.0.1/"]) == 2
    assert "amqp://" in capsys.readouterr().err
    assert main(["worker", "missing_module:scheduler", "--broker", "amqp://127.0.0.1/"]) == 2
    # Without a broker, ``asched workers`` lists the store's workers instead.
    assert main(["workers"]) == 1
    assert "no database at" in capsys.readouterr().err
