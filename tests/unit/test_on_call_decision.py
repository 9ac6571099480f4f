"""The pure on-call decision (bot/domain/oncall.py), case by case."""

from __future__ import annotations

import pytest

from bot.domain.oncall import OnCallDecision, OnCallReason, Rota, combine, decide, match_user

PRIMARY = Rota("payments-primary", frozenset({"PALICE"}))
SECONDARY = Rota("payments-secondary", frozenset({"PBOB"}))
BROKEN = Rota("payments-tertiary", None, "PagerDuty answered HTTP 500")


@pytest.mark.parametrize(
    ("description", "email", "users", "expected"),
    [
        ("one exact match", "alice@example.com", [("PALICE", "alice@example.com")], "PALICE"),
        ("case does not matter", "Alice@Example.com", [("PALICE", "alice@example.com")], "PALICE"),
        ("a near match is not a match", "alice@example.com", [("PX", "alice@example.com.evil")], None),
        ("two users with the email", "a@x.io", [("P1", "a@x.io"), ("P2", "a@x.io")], OnCallReason.AMBIGUOUS_USER),
        ("nobody", "alice@example.com", [], OnCallReason.NO_PAGERDUTY_USER),
        ("no email", " ", [("P1", "")], OnCallReason.NO_EMAIL),
    ],
)
def test_match_user(
    description: str, email: str, users: list[tuple[str, str]], expected: str | OnCallReason | None
) -> None:
    found = match_user(email, users)
    if isinstance(expected, OnCallReason) or expected is None:
        assert isinstance(found, OnCallDecision) and not found.approved, description
        assert found.reason == (expected or OnCallReason.NO_PAGERDUTY_USER), description
    else:
        assert found == expected, description


@pytest.mark.parametrize(
    ("description", "who", "rotas", "reason", "note"),
    [
        ("on call in one", "PALICE", [PRIMARY, SECONDARY], OnCallReason.ON_CALL, "on call for payments-primary"),
        ("on call beats another's failure", "PALICE", [BROKEN, PRIMARY], OnCallReason.ON_CALL, "payments-primary"),
        ("not on call anywhere", "PCAROL", [PRIMARY, SECONDARY], OnCallReason.NOT_ON_CALL, "not on call"),
        ("not on call, one unreadable", "PCAROL", [PRIMARY, BROKEN], OnCallReason.UNAVAILABLE, "HTTP 500"),
    ],
)
def test_decide(description: str, who: str, rotas: list[Rota], reason: OnCallReason, note: str) -> None:
    decision = decide(who, rotas)
    assert decision.reason is reason, description
    assert note in decision.note, description
    assert decision.approved is (reason is OnCallReason.ON_CALL)


def test_combine_approves_on_any_and_otherwise_reports_what_could_not_be_checked() -> None:
    yes = decide("PALICE", [PRIMARY])
    no = decide("PCAROL", [PRIMARY])
    unknown = decide("PCAROL", [BROKEN])
    assert combine([no, yes]) is yes
    assert combine([no, unknown]) is unknown and unknown.unchecked
    assert combine([no, no]).reason is OnCallReason.NOT_ON_CALL and not combine([no]).unchecked
