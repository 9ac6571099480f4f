"""Asks PagerDuty or Slack who is on call, and lets bot.domain.oncall decide; never raises."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.catalog.oncall import OnCall
from bot.domain.oncall import FILED_FOR_SOMEONE, OnCallDecision, OnCallReason, Rota, combine, decide, match_user
from bot.errors import UserError
from bot.oncall.pagerduty import PagerDuty, PagerDutyError

log = logging.getLogger(__name__)
# What reading a PagerDuty answer may raise besides PagerDutyError: a field missing or of another type.
UNREADABLE = (PagerDutyError, KeyError, TypeError, ValueError)


class OnCallChecker:
    """Is a Slack user on call right now in one of a resource's rotas? Any failure: not approved, and why."""

    def __init__(
        self,
        *,
        pagerduty: PagerDuty | None,
        email_of: Callable[[str], str | None],
        group_members: Callable[[frozenset[str]], frozenset[str]],
    ) -> None:
        self._pagerduty = pagerduty
        self._email_of = email_of
        self._group_members = group_members

    def check(self, user: str, on_call: OnCall, *, filed_for_someone: bool = False) -> OnCallDecision:
        """The decision for `user` against the rotas `on_call` names."""
        if filed_for_someone:
            return FILED_FOR_SOMEONE
        decisions: list[OnCallDecision] = []
        if on_call.slack_user_group is not None:
            decisions.append(decide(user, [self._slack_group(on_call.slack_user_group)]))
        if on_call.pagerduty is not None:
            pd_user = self._pagerduty_user(user)
            decisions.append(pd_user if isinstance(pd_user, OnCallDecision) else decide(pd_user, self._rotas(on_call)))
        return combine(decisions)

    def forget(self, *, names: bool = False) -> None:
        """Drop PagerDuty's cached answers (the demo, and the benchmark's cold runs with `names`)."""
        if self._pagerduty is not None:
            self._pagerduty.forget(names=names)

    def _slack_group(self, group: str) -> Rota:
        try:
            return Rota(f"the Slack user group <!subteam^{group}>", self._group_members(frozenset({group})))
        except UserError:
            return Rota(f"the Slack user group <!subteam^{group}>", None, "Slack did not list its members")

    def _pagerduty_user(self, user: str) -> str | OnCallDecision:
        if self._pagerduty is None:
            return OnCallDecision(OnCallReason.NOT_CONFIGURED, "on-call could not be checked: no PagerDuty token set")
        email = self._email_of(user)
        if email is None:
            return OnCallDecision(OnCallReason.NO_EMAIL, "on-call could not be checked: no email in the Slack profile")
        try:
            return match_user(email, self._pagerduty.users_by_email(email))
        except UNREADABLE as exc:
            log.warning("PagerDuty user lookup failed: %s", exc)
            return OnCallDecision(OnCallReason.UNAVAILABLE, f"on-call could not be checked: {_why(exc)}")

    def _rotas(self, on_call: OnCall) -> list[Rota]:
        assert self._pagerduty is not None and on_call.pagerduty is not None
        pd, config = self._pagerduty, on_call.pagerduty
        level = config.escalation_level
        rotas = [self._read(s, pd.schedule_name, pd.schedule_on_call) for s in config.schedules]
        rotas += [
            self._read(p, pd.policy_name, lambda policy: pd.policy_on_call(policy, level))
            for p in config.escalation_policies
        ]
        return rotas

    def _read(self, object_id: str, name_of: Callable[[str], str], on_call_of: Callable[[str], frozenset[str]]) -> Rota:
        try:
            name = name_of(object_id)
        except UNREADABLE:
            name = object_id  # the rota is still named in the note, by its ID
        try:
            return Rota(name, on_call_of(object_id))
        except UNREADABLE as exc:
            log.warning("PagerDuty on-call of %s could not be read: %s", object_id, exc)
            return Rota(name, None, _why(exc))


def _why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, PagerDutyError) else "PagerDuty's answer could not be read"
