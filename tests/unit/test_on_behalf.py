"""Filing on someone's behalf: the `for=` option as parsed, and who may file it or decide on it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.catalog import parse_catalog
from bot.domain.lifecycle import Status
from bot.domain.policy import Reason, may_cancel, may_decide, may_file_for
from bot.errors import ConfigError, UserError
from bot.slack.commands import Request, parse_command

ALICE, BOB, CAROL, DAVE, MALLORY = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0MALLORY"
APPROVERS = frozenset({BOB, CAROL})
R = Reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "request deploy-admins 1h for=<@U0ALICE> hotfix now",
            Request("deploy-admins", "1h", "hotfix now", on_behalf_of=ALICE),
            id="plain-mention",
        ),
        pytest.param(
            "request deploy-admins 1h for=<@U0ALICE|alice> hotfix",
            Request("deploy-admins", "1h", "hotfix", on_behalf_of=ALICE),
            id="escaped-mention-with-name",
        ),
        pytest.param(
            "request Deploy-Admins 1h FOR=<@W0ALICE|a.b> x",
            Request("deploy-admins", "1h", "x", on_behalf_of="W0ALICE"),
            id="key-any-case-enterprise-id",
        ),
        pytest.param(
            "request deploy-admins 1h hotfix for=<@U0ALICE>",
            Request("deploy-admins", "1h", "hotfix for=<@U0ALICE>"),
            id="after-the-reason-it-is-reason-text",
        ),
        pytest.param(
            "request deploy-admins 1h  for=<@U0ALICE>   keep   spacing",
            Request("deploy-admins", "1h", "keep   spacing", on_behalf_of=ALICE),
            id="reason-kept-as-typed",
        ),
    ],
)
def test_for_is_parsed(text: str, expected: Request) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        pytest.param("request deploy-admins 1h for=<@U0ALICE>", "Say why you need access", id="no-reason"),
        pytest.param("request deploy-admins 1h for=@alice hotfix", "'@alice' is not a mention", id="not-a-mention"),
        pytest.param("request deploy-admins 1h for= hotfix", "'' is not a mention", id="empty"),
        pytest.param("request deploy-admins 1h for=<#C0GENERAL> hotfix", "not a mention", id="a-channel"),
        pytest.param("request deploy-admins 1h for=<@U0A> for=<@U0B> x", "for= is given twice", id="twice"),
        pytest.param("request deploy-admins 1h when=now hotfix", "Unknown option 'when='", id="unknown-key"),
        pytest.param("breakglass prod-admin 1h for=<@U0ALICE> down", "cannot be taken on someone", id="breakglass"),
    ],
)
def test_for_mistakes_are_named(text: str, phrase: str) -> None:
    with pytest.raises(UserError) as refused:
        parse_command(text)
    assert phrase in str(refused.value)


def test_an_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match=r"the options are for=, start=\. Usage: /access request <resource> <duration>"):
        parse_command("request deploy-admins 1h until=9am hotfix")


@given(user=st.from_regex(r"[UW][A-Z0-9]{2,20}", fullmatch=True), name=st.from_regex(r"[a-z.]{0,30}", fullmatch=True))
def test_any_mention_form_names_its_user(user: str, name: str) -> None:
    mention = f"<@{user}|{name}>" if name else f"<@{user}>"
    parsed = parse_command(f"request res 1h for={mention} why")
    assert isinstance(parsed, Request) and parsed.on_behalf_of == user and parsed.reason == "why"


@pytest.mark.parametrize(
    ("filer", "delegates", "beneficiary_may_request", "reason"),
    [
        pytest.param(BOB, (), True, R.ALLOWED, id="an-approver"),
        pytest.param(DAVE, (DAVE,), True, R.ALLOWED, id="a-delegate"),
        pytest.param(MALLORY, (DAVE,), True, R.NOT_A_DELEGATE, id="neither"),
        pytest.param(MALLORY, (), False, R.NOT_A_DELEGATE, id="neither-is-said-first"),
        pytest.param(BOB, (), False, R.BENEFICIARY_NOT_A_REQUESTER, id="beneficiary-may-not-request"),
        pytest.param(DAVE, (DAVE,), False, R.BENEFICIARY_NOT_A_REQUESTER, id="delegate-for-a-non-requester"),
    ],
)
def test_may_file_for(filer: str, delegates: tuple[str, ...], beneficiary_may_request: bool, reason: Reason) -> None:
    decision = may_file_for(
        filer=filer, approvers=APPROVERS, delegates=delegates, beneficiary_may_request=beneficiary_may_request
    )
    assert decision.reason is reason


@pytest.mark.parametrize(
    ("actor", "requester", "allow_self_approval", "reason"),
    [
        pytest.param(BOB, ALICE, False, R.FILED_IT, id="the-filer"),
        pytest.param(BOB, ALICE, True, R.FILED_IT, id="the-filer-even-with-self-approval"),
        pytest.param(ALICE, ALICE, True, R.SELF_APPROVAL, id="the-beneficiary-even-with-self-approval"),
        pytest.param(CAROL, CAROL, True, R.SELF_APPROVAL, id="a-beneficiary-who-is-an-approver"),
        pytest.param(CAROL, ALICE, False, R.ALLOWED, id="another-approver"),
        pytest.param(MALLORY, ALICE, True, R.NOT_AN_APPROVER, id="not-an-approver"),
    ],
)
def test_neither_side_may_decide(actor: str, requester: str, allow_self_approval: bool, reason: Reason) -> None:
    decision = may_decide(
        actor=actor,
        requester=requester,
        approvers=APPROVERS,
        allow_self_approval=allow_self_approval,
        status=Status.PENDING,
        filed_by=BOB,
    )
    assert decision.reason is reason


def test_self_approval_still_works_for_ones_own_request() -> None:
    decision = may_decide(
        actor=BOB, requester=BOB, approvers=APPROVERS, allow_self_approval=True, status=Status.PENDING
    )
    assert decision.allowed


@pytest.mark.parametrize(
    ("actor", "reason"),
    [
        pytest.param(ALICE, R.ALLOWED, id="the-beneficiary"),
        pytest.param(BOB, R.ALLOWED, id="the-filer"),
        pytest.param(CAROL, R.NOT_THE_REQUESTER, id="anyone-else"),
    ],
)
def test_the_filer_may_cancel_too(actor: str, reason: Reason) -> None:
    assert may_cancel(actor=actor, requester=ALICE, status=Status.PENDING, filed_by=BOB).reason is reason


def test_delegates_come_from_defaults_or_the_resource_with_groups_flattened() -> None:
    text = """
    defaults: {approval_channel: C0APPROVALS, delegates: [helpdesk]}
    approver_groups:
      helpdesk: [U0ERIN, S0HELP]
    resources:
      x: {kind: iam_group, group_name: g, approvers: [U0BOB]}
      y: {kind: iam_group, group_name: g, approvers: [U0BOB], delegates: [W0DAVE]}
      z: {kind: iam_group, group_name: g, approvers: [U0BOB], delegates: []}
    """
    catalog = parse_catalog(text)
    assert catalog.delegates_of("x") == {"U0ERIN", "S0HELP"}
    assert catalog.delegates_of("y") == {"W0DAVE"}
    assert catalog.delegates_of("z") == frozenset()


def test_an_unknown_delegate_group_is_named() -> None:
    text = """
    defaults: {approval_channel: C0APPROVALS}
    resources:
      x: {kind: iam_group, group_name: g, approvers: [U0BOB], delegates: [nobody]}
    """
    with pytest.raises(ConfigError, match=r"resources\.x\.delegates: unknown approver group 'nobody'"):
        parse_catalog(text)
