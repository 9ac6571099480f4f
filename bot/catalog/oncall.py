"""The catalog's `on_call` key: where accessbot looks up who is on call (PagerDuty, or a Slack user group)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# PagerDuty object IDs are short upper-case strings (P followed by letters and digits: PABC123).
PagerDutyId = Annotated[str, Field(pattern=r"^P[A-Z0-9]{2,20}$")]


class PagerDutyOnCall(BaseModel):
    """`pagerduty: {schedules: [...], escalation_policies: [...], escalation_level: 1}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedules: tuple[PagerDutyId, ...] = ()
    escalation_policies: tuple[PagerDutyId, ...] = ()
    # Who is on call for a policy: its level 1 (the first responders) unless set.
    escalation_level: int = Field(default=1, ge=1, le=20)

    @model_validator(mode="after")
    def _something(self) -> PagerDutyOnCall:
        if not self.schedules and not self.escalation_policies:
            raise ValueError("pagerduty: list schedules or escalation_policies")
        return self


class OnCall(BaseModel):
    """`on_call: {pagerduty: {...}}` or `{slack_user_group: S0ONCALL}`: whoever is on call now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pagerduty: PagerDutyOnCall | None = None
    slack_user_group: Annotated[str, Field(pattern=r"^S[A-Z0-9]{2,}$")] | None = None

    @model_validator(mode="after")
    def _something(self) -> OnCall:
        if self.pagerduty is None and self.slack_user_group is None:
            raise ValueError("on_call: set pagerduty or slack_user_group")
        return self
