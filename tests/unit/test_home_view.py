"""App Home stays within Slack's 100 blocks however much there is to show, and says how much it left out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import utcnow
from bot.slack import views
from bot.store.models import AccessRequest
from bot.store.queries.requests import Page

NOW = utcnow()


def _requests(count: int, status: str, first_id: int = 1) -> list[AccessRequest]:
    return [
        AccessRequest(
            id=first_id + i, requester_id="U0ALICE", resource="deploy-admins", kind="iam_group",
            target="deploy-admins", iam_user="alice", iam_user_arn="arn:aws:iam::123456789012:user/alice",
            duration_seconds=3600, reason="fix", status=status, expires_at=NOW + timedelta(hours=1),
        )
        for i in range(count)
    ]  # fmt: skip


def _notes(view: views.View) -> list[str]:
    return [e["text"] for b in view["blocks"] if b["type"] == "context" for e in b["elements"]]


@pytest.mark.parametrize(
    ("active", "pending", "waiting", "total", "notes"),
    [
        pytest.param(0, 0, 0, 0, ["No active grants.", "Nothing pending.", "Nothing waits for you."], id="empty"),
        pytest.param(15, 15, 15, 15, [], id="exactly a screenful each: nothing left out"),
        pytest.param(16, 1000, 25, 10_000, ["…and 1 more.", "…and 985 more.", "…and 9,985 more."], id="full"),
        pytest.param(0, 0, 25, None, ["No active grants.", "Nothing pending.", "…and more."], id="total unknown"),
    ],
)
def test_home_fits_and_counts(active: int, pending: int, waiting: int, total: int | None, notes: list[str]) -> None:
    mine = _requests(active, "active") + _requests(pending, "pending", first_id=5000)
    rows = _requests(waiting, "pending", first_id=9000)
    view = views.home_view(mine, rows if total is None else Page(rows, total), NOW)
    assert len(view["blocks"]) <= 100
    assert _notes(view) == notes
    approve = [b for b in view["blocks"] if b["type"] == "actions" and "approve" in b["elements"][0]["action_id"]]
    assert len(approve) == min(waiting, views.HOME_ROWS)
