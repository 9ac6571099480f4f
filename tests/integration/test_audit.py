"""The audit trail proves itself: one hash chain through every flow and every concurrent writer,
tampering named by `accessbot audit verify`, lossless exports, and the audit channel's one-liners."""

from __future__ import annotations

import csv
import io
import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bot import audit
from bot.clock import utcnow
from bot.domain.audit import AuditAction
from bot.store import chain, queries
from bot.store.db import session_scope
from bot.store.models import AuditEvent
from tests.conftest import Bot, wait_until
from tests.integration.faults import bot_kms, inject
from tests.integration.flows import approve, file_request
from tests.integration.history import AUDIT_CHANNEL, AUDITED, History, make_history
from tests.support.fake_slack import FakeSlack
from tests.support.operator import Operator, operator_for


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(AUDITED)
    return path


@pytest.fixture
def operator(bot: Bot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Operator:
    return operator_for(bot.runtime.settings, monkeypatch, capsys, tmp_path)


@pytest.fixture
def history(bot: Bot, slack: FakeSlack) -> History:
    return make_history(bot, slack)


def engine_of(bot: Bot) -> Engine:
    return bot.runtime.workflow.engine


def raw(bot: Bot, sql: str, **params: object) -> None:
    """Tamper with the table directly, as someone with database access could."""
    with engine_of(bot).begin() as connection:
        connection.execute(text(sql), params)


def event_id(bot: Bot, request_id: int, action: str) -> int:
    found = [e.id for e in bot.audit(request_id) if e.action == action]
    assert len(found) == 1 and found[0] is not None
    return found[0]


def forged_row(new_id: int, prev_hash: str, *, valid: bool) -> dict[str, object]:
    created = utcnow()
    fields = {
        "request_id": None,
        "actor": "U0MALLORY",
        "action": "approved",
        "from_status": "pending",
        "to_status": "approved",
        "details": "{}",
        "created_at": created,
    }
    digest = chain.event_hash(fields, prev_hash) if valid else "f" * 64
    return {**fields, "id": new_id, "created_at": created, "prev_hash": prev_hash, "hash": digest}


def insert_after(bot: Bot, after: int, *, valid: bool) -> int:
    """Make room after event `after` (IDs are not hashed, so renumbering alone changes nothing), then
    insert a forged event there, linked to `after` and, when `valid`, with a correctly computed hash."""
    raw(bot, "UPDATE audit_events SET id = id + 100000 WHERE id > :k", k=after)
    raw(bot, "UPDATE audit_events SET id = id - 99999 WHERE id > 100000")
    with session_scope(engine_of(bot)) as session:
        previous = session.get(AuditEvent, after)
        assert previous is not None and previous.hash is not None
        prev_hash = previous.hash
    row = forged_row(after + 1, prev_hash, valid=valid)
    with session_scope(engine_of(bot)) as session:
        session.add(AuditEvent.model_validate(row))
    return after + 1


@pytest.mark.both_databases
def test_every_flow_appends_to_one_chain_that_verify_accepts(bot: Bot, history: History, operator: Operator) -> None:
    events = bot.audit()
    assert len(events) > 10
    assert events[0].prev_hash == chain.GENESIS
    for before, event in itertools.pairwise(events):
        assert event.prev_hash == before.hash, f"#{event.id} does not link to #{before.id}"
    for event in events:
        assert event.hash == chain.event_hash(event.model_dump(), event.prev_hash or "")

    result = operator("audit", "verify")
    assert result.code == 0, result.out + result.err
    assert f"audit chain intact: {len(events)} event(s)" in result.out
    assert f"head #{events[-1].id} {events[-1].hash}" in result.out


@pytest.mark.both_databases
def test_concurrent_writers_form_one_linear_chain(engine: Engine) -> None:
    threads, each = 8, 25
    start = threading.Barrier(threads)

    def write(worker: int) -> None:
        start.wait()
        for n in range(each):
            with session_scope(engine) as session:
                queries.record_audit(
                    session=session, actor=f"U0W{worker}", action=AuditAction.REMINDED, at=utcnow(), n=n
                )
                if n % 5 == 0:  # several events in one transaction too
                    queries.record_audit(
                        session=session, actor=f"U0W{worker}", action=AuditAction.ALERT, at=utcnow(), n=n
                    )

    workers = [threading.Thread(target=write, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    verdict = audit.check_chain(audit.links_from_db(engine))
    assert verdict.ok, verdict.problem
    assert verdict.checked == threads * each + threads * 5
    with session_scope(engine) as session:
        prevs = [e.prev_hash for e in queries.audit_events(session=session, limit=10_000)]
    assert len(set(prevs)) == len(prevs), "two events link to the same predecessor: the chain forked"


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param("update", "event #{k} was changed", id="a row's content updated"),
        pytest.param("update_and_rehash", "event #{k} was changed (and its hash recomputed)", id="updated, rehashed"),
        pytest.param("delete", "event(s) #{k} were removed", id="a row deleted"),
        pytest.param("delete_first", "events before #{k} were removed", id="the first row deleted"),
        pytest.param("insert", "event #{k} was inserted", id="a row inserted with a valid hash"),
        pytest.param("insert_garbage", "event #{k} was inserted", id="a row inserted with a made-up hash"),
    ],
)
def test_verify_names_the_event_that_was_tampered_with(
    bot: Bot, history: History, operator: Operator, tamper: str, expected: str
) -> None:
    approved = event_id(bot, history.expired, "approved")
    if tamper == "update":
        raw(bot, "UPDATE audit_events SET actor = 'U0MALLORY' WHERE id = :k", k=approved)
        named = approved
    elif tamper == "update_and_rehash":
        with session_scope(engine_of(bot)) as session:
            event = session.get(AuditEvent, approved)
            assert event is not None
            fields = {**event.model_dump(), "actor": "U0MALLORY"}
            digest = chain.event_hash(fields, event.prev_hash or "")
        raw(bot, "UPDATE audit_events SET actor = 'U0MALLORY', hash = :h WHERE id = :k", h=digest, k=approved)
        named = approved
    elif tamper == "delete":
        raw(bot, "DELETE FROM audit_events WHERE id = :k", k=approved)
        named = approved
    elif tamper == "delete_first":
        first = bot.audit()[0].id
        raw(bot, "DELETE FROM audit_events WHERE id = :k", k=first)
        named = bot.audit()[0].id  # type: ignore[assignment]
    else:
        assert operator("audit", "verify").code == 0
        named = insert_after(bot, approved, valid=tamper == "insert")
        assert operator("audit", "verify").code == 1

    result = operator("audit", "verify")
    assert result.code == 1
    assert "audit chain BROKEN" in result.out
    assert expected.format(k=named) in result.out, result.out


def test_renumbering_ids_alone_keeps_the_chain_intact(bot: Bot, history: History, operator: Operator) -> None:
    approved = event_id(bot, history.expired, "approved")
    raw(bot, "UPDATE audit_events SET id = id + 100000 WHERE id > :k", k=approved)
    assert operator("audit", "verify").code == 0


@pytest.mark.both_databases
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips_and_the_export_verifies_on_its_own(
    bot: Bot, history: History, operator: Operator, tmp_path: Path, fmt: str
) -> None:
    result = operator("audit", "export", "--format", fmt)
    assert result.code == 0, result.err
    records = list(audit.read_export(io.StringIO(result.out), fmt))
    events = bot.audit()
    assert [r["id"] for r in records] == [e.id for e in events]
    for record, event in zip(records, events, strict=True):
        stored = {**audit.record_of(event), "details": event.details}
        assert record == stored
    if fmt == "jsonl":
        first = json.loads(result.out.splitlines()[0])
        assert isinstance(first["details"], dict) and first["details"]["reason"] == "ship the hotfix"
    else:
        assert next(csv.reader(io.StringIO(result.out))) == list(audit.COLUMNS)

    exported = tmp_path / f"audit.{fmt}"
    exported.write_text(result.out)
    checked = operator("audit", "verify", "--file", str(exported), "--format", fmt)
    assert checked.code == 0 and f"intact: {len(events)} event(s)" in checked.out

    changed = result.out.replace("ship the hotfix", "ship the backdoor", 1)
    assert changed != result.out
    exported.write_text(changed)
    broken = operator("audit", "verify", "--file", str(exported), "--format", fmt)
    assert broken.code == 1 and f"event #{events[0].id} was changed" in broken.out


@pytest.mark.both_databases
def test_export_filters_by_time(bot: Bot, history: History, operator: Operator) -> None:
    events = bot.audit()
    middle = events[len(events) // 2]
    since = chain.timestamp(middle.created_at)
    after = operator("audit", "export", "--since", since)
    ids = [json.loads(line)["id"] for line in after.out.splitlines()]
    # A window is the contiguous run of IDs from the first event written at/after --since to the last one
    # written before --until (concurrent writers interleave times and IDs slightly; a chain has no holes).
    first = min(e.id for e in events if e.created_at >= middle.created_at)
    assert ids == [e.id for e in events if e.id >= first]
    before = operator("audit", "export", "--until", since, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(before.out)))
    last = max(e.id for e in events if e.created_at < middle.created_at)
    assert [int(r["id"]) for r in rows] == [e.id for e in events if e.id <= last]
    # A slice verifies from its own first event on.
    assert audit.check_chain(audit.links_from_export(io.StringIO(after.out), "jsonl"), start=None).ok

    bad = operator("audit", "export", "--since", "last tuesday")
    assert bad.code == 2 and "not a time" in bad.err


def test_the_audit_channel_gets_one_line_per_grant_end_denial_break_glass_and_alert(
    bot: Bot, slack: FakeSlack, history: History
) -> None:
    def audit_posts() -> list[str]:
        return [
            str(c.args["text"]) for c in slack.find("chat.postMessage", lambda c: c.args["channel"] == AUDIT_CHANNEL)
        ]

    wait_until(lambda: len(audit_posts()) >= 4)
    posts = audit_posts()
    assert all("\n" not in post for post in posts)
    granted = [p for p in posts if p.startswith(":key:")]
    assert len(granted) == 2
    assert any(f"#{history.expired} <@U0ALICE> now has *deploy-admins* (alice)" in p for p in granted)
    assert any("approved by <@U0BOB>. Reason: ship the hotfix" in p for p in granted)
    assert any(f"#{history.expired} *deploy-admins* for <@U0ALICE> expired" in p for p in posts)
    assert any(
        f"#{history.denied} <@U0BOB>'s request for *payments-key* was denied by <@U0DAVE>: use the" in p for p in posts
    )
    assert not any(f"#{history.pending}" in p for p in posts)

    glass = file_request(bot, "U0ALICE", "breakglass firefighter 1h prod is down")
    bot.wait_status(glass, "active")
    wait_until(lambda: any(f"#{glass} BREAK-GLASS: <@U0ALICE> took *firefighter* for 1h" in p for p in audit_posts()))

    outage = inject(bot_kms(bot), "RevokeGrant", code="AccessDeniedException", status=400, message="no RevokeGrant")
    key = file_request(bot, "U0ALICE", "request payments-key 1s one decrypt")
    approve(bot, key, "U0DAVE", "U0ERIN")
    alert = wait_until(lambda: [p for p in audit_posts() if p.startswith(f":rotating_light: #{key} alert")], timeout=15)
    assert f"Revoking #{key} failed 3 times" in alert[0]
    outage.stop()
    bot.wait_status(key, "expired", timeout=15)
    wait_until(lambda: any(f"#{key} *payments-key* for <@U0ALICE> expired" in p for p in audit_posts()))


def test_a_resource_without_an_audit_channel_posts_nothing(
    make_bot: Callable[..., Bot], catalog_file: Path, slack: FakeSlack
) -> None:
    catalog_file.write_text(AUDITED.replace(f"  audit_channel: {AUDIT_CHANNEL}\n", ""))
    bot = make_bot()
    request_id = file_request(bot, "U0ALICE", "request deploy-admins 1s quick")
    approve(bot, request_id)
    bot.wait_status(request_id, "expired")
    slack.wait_for("chat.postMessage", lambda c: "has ended" in c.text())
    assert slack.find("chat.postMessage", lambda c: c.args["channel"] == AUDIT_CHANNEL) == []
