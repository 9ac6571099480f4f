"""Who may read a grant's activity report: pure, like the rest of policy."""

from __future__ import annotations

from collections.abc import Set


def may_read_activity(user: str, *, requester: str, approvers: Set[str], auditors: Set[str]) -> bool:
    """The requester, the resource's approvers and the catalog's auditors may; nobody else."""
    return user == requester or user in approvers or user in auditors
