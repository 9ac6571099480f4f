"""check-config's reading of a role's trust policy: who it lets assume the role, and on what terms.

The bot's promise holds only for sessions that went through it: an IAM user's inline `accessbot-<id>` policy
(time-limited, with the user's name as source identity) and the session deny on the role at the end. So the
trust policy must let the account's IAM policies decide (name the account root), and nobody by name.
"""

from __future__ import annotations

import re
from typing import Any

from bot.aws.policy_reading import allows, conditions_on, is_named_principal, principals, statements

ASSUME = "sts:AssumeRole"
SOURCE_IDENTITY_CONDITION = '"Condition": {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}}'


def _root(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def _fix(account: str) -> str:
    return (
        f"name only the account root {_root(account)} as the Principal, in a statement that allows "
        '"sts:AssumeRole" and "sts:SetSourceIdentity"'
    )


def _trusts_account(kind: str, value: str, account: str) -> bool:
    root = re.compile(rf"^arn:aws[a-z-]*:iam::{re.escape(account)}:root$")
    return kind == "AWS" and (value == account or bool(root.match(value)))


def trust_problem(document: dict[str, Any] | str, account: str) -> str | None:
    """What is wrong with a trust policy for accessbot (None: nothing).

    It must let principals of `account` assume the role, through the account root. It must name nobody else:
    "*" lets anyone (conditions may narrow it, but nothing of the bot's), and in one account a trust policy
    that names an IAM user or role lets that principal assume the role by itself, whatever its own policies
    say (IAM User Guide, "Policy evaluation logic": a resource-based policy that names a principal of the same
    account grants by itself; https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
    Such a session has no time limit, no source identity and no deny of accessbot's.
    """
    assumable = [s for s in statements(document) if s.get("Effect") in ("Allow", "Deny") and allows_or_denies(s)]
    allowed = [s for s in assumable if s.get("Effect") == "Allow"]
    if any(
        s.get("Effect") == "Deny"
        and not s.get("Condition")
        and any(v == "*" or _trusts_account(k, v, account) for k, v in principals(s))
        for s in assumable
    ):
        return f"its trust policy denies sts:AssumeRole to principals of account {account}"
    anyone = [s for s in allowed if ("AWS", "*") in principals(s)]
    if anyone:
        narrowed = " (its conditions may narrow who, but nothing makes them go through accessbot)"
        return (
            'its trust policy lets anyone assume it (Principal "*")'
            + (narrowed if all(s.get("Condition") for s in anyone) else "")
            + f"; {_fix(account)}"
        )
    named = sorted({v for s in allowed for k, v in principals(s) if k == "AWS" and is_named_principal(v)})
    if named:
        return (
            f"its trust policy names {', '.join(named)} directly, which lets that principal assume the role by "
            "itself (a trust policy naming a principal of the same account grants on its own: no time limit, "
            f"no source identity, no session deny from accessbot); {_fix(account)}"
        )
    if any(_trusts_account(k, v, account) for s in allowed for k, v in principals(s)):
        return None
    trusted = sorted({f"{kind}:{value}" for s in allowed for kind, value in principals(s)})
    return (
        f"its trust policy does not let principals of account {account} assume it "
        f"(it trusts {', '.join(trusted) if trusted else 'nobody'})"
    )


def allows_or_denies(statement: dict[str, Any]) -> bool:
    """Whether the statement is about sts:AssumeRole (Action or NotAction, wildcards included)."""
    return allows({**statement, "Effect": "Allow"}, ASSUME)


def source_identity_problem(document: dict[str, Any] | str, role: str) -> str | None:
    """Whether a trust policy allows sts:SetSourceIdentity, which every role grant's session needs; None when so.

    Role grants require `sts:SourceIdentity` to be the IAM user's name, so that the deny put on the role at the
    end of a grant can find that user's open sessions; without this action AWS refuses every such AssumeRole.
    """
    if any(allows(s, "sts:SetSourceIdentity") for s in statements(document)):
        return None
    return (
        f"the trust policy of role {role} does not allow sts:SetSourceIdentity, so nobody can assume it with "
        'the source identity accessbot requires; add "sts:SetSourceIdentity" to the Action of the statement '
        "that allows sts:AssumeRole"
    )


def source_identity_warning(document: dict[str, Any] | str, account: str) -> str | None:
    """A warning when the statement trusting the account has no `sts:SourceIdentity` condition; None otherwise.

    STS API Reference, AssumeRole, SourceIdentity: "You can require users to specify a source identity when
    they assume a role ... by using the sts:SourceIdentity condition key in a role trust policy." Without it,
    anyone in the account whose own policies allow sts:AssumeRole on this role (AdministratorAccess does) gets
    sessions without accessbot, and a session with no source identity (or a made-up one) is reached by no
    session deny.
    """
    trusting = [
        s for s in statements(document)
        if allows(s, ASSUME) and any(_trusts_account(k, v, account) for k, v in principals(s))
    ]  # fmt: skip
    if not trusting or any(conditions_on(s, "sts:SourceIdentity") for s in trusting):
        return None
    return (
        "its trust policy does not require a source identity: anyone in the account whose own policies allow "
        "sts:AssumeRole on it (AdministratorAccess does) can assume it without accessbot, in sessions no session "
        f"deny reaches; add {SOURCE_IDENTITY_CONDITION} to the statement that trusts {_root(account)}, so each "
        "IAM user can only name itself"
    )
