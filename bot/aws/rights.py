"""check-config's reading of what a catalog role or group may do itself that outlives or undoes an end.

A role session is ended by a deny on the role, keyed on its source identity. What a session does with the
role's own permissions can escape that: assume another role (a session of that role is not this role's, no
deny here reaches it), hand a role to a service (iam:PassRole), make long-lived credentials or rewrite the
role's policies (the deny included). Members of a catalog group can likewise assume roles while they are
members, and keep those sessions after. Documents are read, not evaluated (see bot/aws/policy_reading.py):
`accessbot check-config --simulate` asks IAM's own evaluator (iam:SimulatePrincipalPolicy) where reading is
not enough.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.policy_reading import allows, names, resources, statements

ASSUME = "sts:AssumeRole"
PASS_ROLE = "iam:PassRole"
# IAM writes with which a session outlives its end (credentials of its own) or undoes it (the role's policies,
# the session deny among them, or its trust). Matched against each statement's actions and their wildcards.
ESCAPES = (
    "iam:CreateAccessKey",
    "iam:CreateUser",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
)

Documents = list[tuple[str, dict[str, Any] | str]]  # (where it is: "inline policy x", "managed policy arn"), document


def role_warnings(iam: Any, role_name: str, role_arn: str) -> list[str]:
    """What the role's own permission policies allow that lets a session outlive or undo its end."""
    try:
        documents = _role_documents(iam, role_name)
    except AwsError as exc:
        return [f"its permission policies could not be read ({exc}); check them with iam:SimulatePrincipalPolicy"]
    found = []
    others = _allowed(documents, ASSUME, lambda s: any(r.lower() != role_arn.lower() for r in resources(s)))
    if others:
        found.append(
            f"its own permissions allow sts:AssumeRole on other roles ({others}): a session can assume them, and "
            "those sessions outlast the grant with no deny on this role reaching them; allow sts:AssumeRole only "
            "on the roles it needs, or not at all"
        )
    passing = _allowed(documents, PASS_ROLE)
    if passing:
        found.append(
            f"its own permissions allow iam:PassRole ({passing}): a session can give a role to a service (an "
            "instance, a function) whose credentials outlast the grant; remove iam:PassRole, or limit it to named "
            "roles with an iam:PassedToService condition"
        )
    writes = [a for a in ESCAPES if _allowed(documents, a)]
    if writes:
        where = _where(documents, lambda s: any(allows(s, a) for a in writes))
        found.append(
            f"its own permissions allow {', '.join(writes)} ({where}): a session can make credentials that outlast "
            "the grant or change the role's policies (the session deny included); remove these IAM actions from "
            "the role, e.g. with a statement denying them"
        )
    return found


def group_warning(iam: Any, group: str) -> str | None:
    """A warning when the group's policies allow sts:AssumeRole: sessions made while a member outlast the grant."""
    try:
        documents = _group_documents(iam, group)
    except AwsError as exc:
        return f"its policies could not be read ({exc}); check them with iam:SimulatePrincipalPolicy"
    where = _allowed(documents, ASSUME)
    if not where:
        return None
    return (
        f"its policies allow sts:AssumeRole ({where}): a member can assume roles while the grant lasts, and those "
        "sessions outlast it (no deny on a role reaches them); remove sts:AssumeRole from the group and grant "
        "those roles as iam_role resources instead"
    )


def _allowed(documents: Documents, action: str, also: Any = lambda _s: True) -> str:
    """The policies that allow `action` (with `also` true of the statement), unless a Deny of it covers all.

    A Deny counts only when it names the action for every resource ("*") with no condition: a narrower one
    may leave some of it allowed, so the warning stays (conservative).
    """
    every = [s for _label, document in documents for s in statements(document)]
    if any(_denied_everywhere(s, action) for s in every):
        return ""
    return _where(documents, lambda s: allows(s, action) and also(s))


def _denied_everywhere(statement: dict[str, Any], action: str) -> bool:
    return (
        statement.get("Effect") == "Deny"
        and names(statement, action)
        and not statement.get("Condition")
        and "NotResource" not in statement
        and "*" in resources(statement)
    )


def _where(documents: Documents, matches: Any) -> str:
    """The policies with a statement that `matches`, named for people; '' when none."""
    return ", ".join(label for label, document in documents if any(matches(s) for s in statements(document)))


def _role_documents(iam: Any, role: str) -> Documents:
    with aws_call("iam:ListRolePolicies"):
        inline = [
            n for page in iam.get_paginator("list_role_policies").paginate(RoleName=role) for n in page["PolicyNames"]
        ]
    documents: Documents = []
    for name in inline:
        with aws_call("iam:GetRolePolicy"):
            documents.append(
                (f"inline policy {name}", iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
            )
    with aws_call("iam:ListAttachedRolePolicies"):
        pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
        attached = [p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]]
    return documents + list(_managed(iam, attached))


def _group_documents(iam: Any, group: str) -> Documents:
    with aws_call("iam:ListGroupPolicies"):
        pages = iam.get_paginator("list_group_policies").paginate(GroupName=group)
        inline = [n for page in pages for n in page["PolicyNames"]]
    documents: Documents = []
    for name in inline:
        with aws_call("iam:GetGroupPolicy"):
            answer = iam.get_group_policy(GroupName=group, PolicyName=name)
            documents.append((f"inline policy {name}", answer["PolicyDocument"]))
    with aws_call("iam:ListAttachedGroupPolicies"):
        pages = iam.get_paginator("list_attached_group_policies").paginate(GroupName=group)
        attached = [p["PolicyArn"] for page in pages for p in page["AttachedPolicies"]]
    return documents + list(_managed(iam, attached))


def _managed(iam: Any, arns: list[str]) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """Each managed policy's default version: the one IAM applies."""
    for arn in arns:
        with aws_call("iam:GetPolicy"):
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        with aws_call("iam:GetPolicyVersion"):
            yield (
                f"managed policy {arn}",
                iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"],
            )
