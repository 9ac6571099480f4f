"""The policy evaluator of the test support, held to the decisions AWS documents for its own example policies.

Each case names the AWS page its policy and expected decision come from, so that the model is checked
against AWS rather than against itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.aws_model.evaluator import Context, Decision, Unsupported, evaluate

ALLOWED, EXPLICIT, IMPLICIT = Decision.ALLOWED, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY

# IAM User Guide, "Revoke IAM role temporary security credentials" (id_roles_use_revoke-sessions.html): the
# AWSRevokeOlderSessions inline policy the console attaches. "It includes a condition that applies the
# restrictions only if the user assumed the role before the point in time when you revoke the permissions.
# If the user assumes the role after you revoked the permissions, then the deny policy does not apply."
REVOKE_OLDER_SESSIONS = {
    "Version": "2012-10-17",
    "Statement": {
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2014-05-07T23:47:00Z"}},
    },
}
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# IAM User Guide, "AWS: Allows access based on date and time" (reference_policies_examples_aws-dates.html):
# "restricts access to actions that occur between April 1, 2020 and June 30, 2020 (UTC), inclusive."
DATES = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "service-prefix:action-name",
            "Resource": "*",
            "Condition": {
                "DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"},
                "DateLessThan": {"aws:CurrentTime": "2020-06-30T23:59:59Z"},
            },
        }
    ],
}

# IAM User Guide, "IAM JSON policy elements: Condition operators", "Condition operator to check existence of
# condition keys": allow only when the request is not made with temporary credentials (aws:TokenIssueTime is
# in the request context only for temporary credentials).
NULL_EXAMPLE = {
    "Version": "2012-10-17",
    "Statement": {
        "Action": "ec2:*",
        "Effect": "Allow",
        "Resource": "*",
        "Condition": {"Null": {"aws:TokenIssueTime": "true"}},
    },
}


def identity_center_deny(key: str) -> dict[str, Any]:
    """IAM Identity Center User Guide, "Revoke active IAM role sessions created by permission sets" (deny policy),
    which writes the key `identitystore:userId`; "Revoke access for deleted users" writes `identitystore:UserId`."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["*"],
                "Resource": "*",
                "Condition": {"StringEquals": {key: "906739e4c7-7e3a2f6b-0000"}},
            }
        ],
    }


# IAM User Guide, "Monitor and control actions taken with assumed roles": a role's trust (or an identity policy)
# can require the source identity with sts:SourceIdentity; StringLike takes wildcards (Condition operators,
# "String condition operators").
SOURCE_IDENTITY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Resource": "arn:aws:iam::123456789012:role/CriticalRole",
            "Condition": {"StringLike": {"sts:SourceIdentity": ["Admin-*", "Diego"]}},
        }
    ],
}

CASES: list[tuple[str, list[dict[str, Any]], str, str, Context, Decision]] = [
    (
        "revoke: a session issued before the cutoff is denied",
        [ADMIN, REVOKE_OLDER_SESSIONS],
        "s3:ListBucket",
        "*",
        {"aws:TokenIssueTime": "2014-05-07T23:46:59Z"},
        EXPLICIT,
    ),
    (
        "revoke: a session issued after the cutoff keeps the role's permissions",
        [ADMIN, REVOKE_OLDER_SESSIONS],
        "s3:ListBucket",
        "*",
        {"aws:TokenIssueTime": "2014-05-07T23:47:01Z"},
        ALLOWED,
    ),
    (
        "revoke: issued at the cutoff itself is not before it (DateLessThan is strict)",
        [ADMIN, REVOKE_OLDER_SESSIONS],
        "s3:ListBucket",
        "*",
        {"aws:TokenIssueTime": "2014-05-07T23:47:00Z"},
        ALLOWED,
    ),
    (
        "revoke: long-term credentials have no aws:TokenIssueTime, so the deny does not match them",
        [ADMIN, REVOKE_OLDER_SESSIONS],
        "s3:ListBucket",
        "*",
        {},
        ALLOWED,
    ),
    (
        "dates: inside the window",
        [DATES],
        "service-prefix:action-name",
        "*",
        {"aws:CurrentTime": "2020-05-15T12:00:00Z"},
        ALLOWED,
    ),
    (
        "dates: before the window",
        [DATES],
        "service-prefix:action-name",
        "*",
        {"aws:CurrentTime": "2020-03-31T23:59:59Z"},
        IMPLICIT,
    ),
    (
        "dates: after the window",
        [DATES],
        "service-prefix:action-name",
        "*",
        {"aws:CurrentTime": "2020-07-01T00:00:00Z"},
        IMPLICIT,
    ),
    ("dates: without aws:CurrentTime the condition is false", [DATES], "service-prefix:action-name", "*", {}, IMPLICIT),
    (
        "dates: action names ignore case",
        [DATES],
        "Service-Prefix:Action-Name",
        "*",
        {"aws:CurrentTime": "2020-05-15T12:00:00Z"},
        ALLOWED,
    ),
    (
        "null: long-term credentials (no aws:TokenIssueTime) are allowed",
        [NULL_EXAMPLE],
        "ec2:RunInstances",
        "*",
        {},
        ALLOWED,
    ),
    (
        "null: temporary credentials are not",
        [NULL_EXAMPLE],
        "ec2:RunInstances",
        "*",
        {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"},
        IMPLICIT,
    ),
    ("null: ec2:* does not cover s3", [NULL_EXAMPLE], "s3:GetObject", "*", {}, IMPLICIT),
    (
        "identity center: the user's sessions are denied",
        [ADMIN, identity_center_deny("identitystore:userId")],
        "s3:ListBucket",
        "*",
        {"identitystore:userId": "906739e4c7-7e3a2f6b-0000"},
        EXPLICIT,
    ),
    (
        "identity center: keys match without regard to case",
        [ADMIN, identity_center_deny("identitystore:UserId")],
        "s3:ListBucket",
        "*",
        {"identitystore:userid": "906739e4c7-7e3a2f6b-0000"},
        EXPLICIT,
    ),
    (
        "identity center: another user is not denied",
        [ADMIN, identity_center_deny("identitystore:userId")],
        "s3:ListBucket",
        "*",
        {"identitystore:userId": "someone-else"},
        ALLOWED,
    ),
    (
        "identity center: values are case-sensitive under StringEquals",
        [ADMIN, identity_center_deny("identitystore:userId")],
        "s3:ListBucket",
        "*",
        {"identitystore:userId": "906739E4C7-7E3A2F6B-0000"},
        ALLOWED,
    ),
    (
        "source identity: a listed value",
        [SOURCE_IDENTITY],
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/CriticalRole",
        {"sts:SourceIdentity": "Diego"},
        ALLOWED,
    ),
    (
        "source identity: a wildcard value (OR across values)",
        [SOURCE_IDENTITY],
        "sts:SetSourceIdentity",
        "arn:aws:iam::123456789012:role/CriticalRole",
        {"sts:SourceIdentity": "Admin-Nikhil"},
        ALLOWED,
    ),
    (
        "source identity: another value",
        [SOURCE_IDENTITY],
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/CriticalRole",
        {"sts:SourceIdentity": "Mallory"},
        IMPLICIT,
    ),
    (
        "source identity: none set",
        [SOURCE_IDENTITY],
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/CriticalRole",
        {},
        IMPLICIT,
    ),
    (
        "source identity: another role (Resource)",
        [SOURCE_IDENTITY],
        "sts:AssumeRole",
        "arn:aws:iam::123456789012:role/OtherRole",
        {"sts:SourceIdentity": "Diego"},
        IMPLICIT,
    ),
    ("no policy: implicit deny", [], "s3:ListBucket", "*", {}, IMPLICIT),
]


@pytest.mark.parametrize(
    ("policies", "action", "resource", "context", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_documented_decisions(
    policies: list[dict[str, Any]], action: str, resource: str, context: Context, expected: Decision
) -> None:
    assert evaluate(policies, action, resource, context) is expected


def mfa(operator: str) -> dict[str, Any]:
    return {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": "*",
                "Condition": {operator: {"aws:MultiFactorAuthPresent": "true"}},
            }
        ]
    }


def test_bool_and_bool_if_exists_differ_only_when_the_key_is_missing() -> None:
    # Condition operators, "...IfExists condition operators": with IfExists a missing key makes the condition
    # true; without it, false. AWS's own MFA example ("AWS: Allows ... with MFA") rests on this difference.
    assert evaluate([mfa("Bool")], "s3:GetObject", "*", {"aws:MultiFactorAuthPresent": "true"}) is ALLOWED
    assert evaluate([mfa("Bool")], "s3:GetObject", "*", {"aws:MultiFactorAuthPresent": "false"}) is IMPLICIT
    assert evaluate([mfa("Bool")], "s3:GetObject", "*", {}) is IMPLICIT
    assert evaluate([mfa("BoolIfExists")], "s3:GetObject", "*", {}) is ALLOWED
    assert evaluate([mfa("BoolIfExists")], "s3:GetObject", "*", {"aws:MultiFactorAuthPresent": "false"}) is IMPLICIT


def test_negated_operators_hold_when_the_key_is_missing_and_when_no_value_matches() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ["111111111111", "222222222222"]}},
            }
        ]
    }
    assert evaluate([ADMIN, policy], "s3:GetObject", "*", {}) is EXPLICIT
    assert evaluate([ADMIN, policy], "s3:GetObject", "*", {"aws:PrincipalAccount": "333333333333"}) is EXPLICIT
    assert evaluate([ADMIN, policy], "s3:GetObject", "*", {"aws:PrincipalAccount": "222222222222"}) is ALLOWED


def test_not_action_and_resource_wildcards() -> None:
    policy = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::logs-?/*"}]}
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::logs-1/a/b", {}) is ALLOWED
    assert evaluate([policy], "s3:GetObject", "arn:aws:s3:::logs-12/a", {}) is IMPLICIT
    assert evaluate([policy], "IAM:CreateUser", "arn:aws:s3:::logs-1/a", {}) is IMPLICIT


def test_url_encoded_documents_as_iam_returns_them() -> None:
    encoded = (
        "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%7D"
    )
    assert evaluate([encoded], "s3:GetObject", "*", {}) is ALLOWED


def test_what_is_not_modelled_is_refused_rather_than_guessed() -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "*",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
            }
        ]
    }
    with pytest.raises(Unsupported):
        evaluate([policy], "s3:GetObject", "*", {"aws:SourceIp": "203.0.113.1"})


# IAM User Guide, "IAM policy elements: Variables and tags" (reference_policies_variables.html): a variable is
# replaced with the request context's value; the trust condition check-config asks for,
# `sts:SourceIdentity` = `${aws:username}`, lets an IAM user name only itself, and a role session (which has
# no aws:username) not at all.
SOURCE_IS_SELF = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Resource": "*",
            "Condition": {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}},
        }
    ],
}


@pytest.mark.parametrize(
    ("description", "context", "expected"),
    [
        ("an IAM user naming itself", {"aws:username": "alice", "sts:SourceIdentity": "alice"}, ALLOWED),
        ("an IAM user naming someone else", {"aws:username": "alice", "sts:SourceIdentity": "bob"}, IMPLICIT),
        ("a role session (no aws:username) re-assuming", {"sts:SourceIdentity": "alice"}, IMPLICIT),
        ("the literal text is no match", {"aws:username": "x", "sts:SourceIdentity": "${aws:username}"}, IMPLICIT),
    ],
)
def test_policy_variables_are_replaced_from_the_request_context(
    description: str, context: Context, expected: Decision
) -> None:
    assert evaluate([SOURCE_IS_SELF], "sts:AssumeRole", "arn:aws:iam::1:role/r", context) is expected, description
