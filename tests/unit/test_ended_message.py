"""The requester's "ended" DM: a KMS key's says the key may keep working a few minutes (KMS consistency)."""

from __future__ import annotations

import pytest

from bot.slack.requester_messages import requester_text
from bot.store.models import AccessRequest


def _ended(kind: str, status: str, ended_by: str | None = None) -> AccessRequest:
    return AccessRequest(
        id=12, requester_id="U0ALICE", resource="payments-key", kind=kind, target="alias/payments",
        iam_user="alice", iam_user_arn="arn:aws:iam::123456789012:user/alice", duration_seconds=60, reason="x",
        status=status, ended_by=ended_by,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "status", "ended_by", "expected"),
    [
        pytest.param(
            "kms_key", "expired", None,
            "Your access to *payments-key* (request #12) has ended (expired). AWS KMS may keep honouring the grant "
            "for a few minutes while the revoke reaches all of KMS.",
            id="a key's expiry says it may work a few minutes more",
        ),
        pytest.param(
            "kms_key", "revoked", "U0BOB",
            "Your access to *payments-key* (request #12) has ended (revoked) by <@U0BOB>. AWS KMS may keep "
            "honouring the grant for a few minutes while the revoke reaches all of KMS.",
            id="so does a key's early revoke",
        ),
        pytest.param(
            "iam_group", "expired", None, "Your access to *payments-key* (request #12) has ended (expired).",
            id="other kinds say nothing of KMS",
        ),
    ],
)  # fmt: skip
def test_ended_dm(kind: str, status: str, ended_by: str | None, expected: str) -> None:
    assert requester_text(_ended(kind, status, ended_by), "ended") == expected
