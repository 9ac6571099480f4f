"""Reading policy documents for check-config: actions with wildcards and NotAction, principals, trust verdicts."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from bot.aws.policy_reading import allows, conditions_on, is_named_principal, names, principals, statements
from bot.aws.trust import source_identity_warning, trust_problem

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ASSUME = ["sts:AssumeRole", "sts:SetSourceIdentity"]
REQUIRED = {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}}
ASSUME_FIX = (
    f'name only the account root {ROOT} as the Principal, in a statement that allows "sts:AssumeRole" and '
    '"sts:SetSourceIdentity"'
)


@pytest.mark.parametrize(
    ("statement", "action", "named"),
    [
        pytest.param({"Action": "sts:AssumeRole"}, "sts:AssumeRole", True, id="exact"),
        pytest.param({"Action": "STS:assumerole"}, "sts:AssumeRole", True, id="action names ignore case"),
        pytest.param({"Action": ["s3:*", "iam:*"]}, "iam:CreateAccessKey", True, id="a service wildcard"),
        pytest.param({"Action": "*"}, "iam:PassRole", True, id="everything"),
        pytest.param({"Action": "iam:Put*"}, "iam:PutRolePolicy", True, id="a prefix wildcard"),
        pytest.param({"Action": "iam:*RolePolicy"}, "iam:DeleteRolePolicy", True, id="a middle wildcard"),
        pytest.param({"Action": "iam:Get*"}, "iam:PassRole", False, id="another prefix"),
        pytest.param({"Action": "sts:AssumeRole?"}, "sts:AssumeRole", False, id="? needs one character"),
        pytest.param({"NotAction": "s3:*"}, "iam:PassRole", True, id="NotAction names what it does not list"),
        pytest.param({"NotAction": ["iam:*", "s3:*"]}, "iam:PassRole", False, id="NotAction listing it"),
        pytest.param({}, "iam:PassRole", False, id="no action at all"),
    ],
)
def test_names(statement: dict[str, Any], action: str, named: bool) -> None:
    assert names(statement, action) is named


def test_only_an_allow_allows() -> None:
    assert allows({"Effect": "Allow", "Action": "*"}, "iam:PassRole")
    assert not allows({"Effect": "Deny", "Action": "*"}, "iam:PassRole")


def test_statements_read_a_url_encoded_document_and_a_single_statement() -> None:
    document = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}
    assert statements(quote(json.dumps(document))) == [document["Statement"]]


@pytest.mark.parametrize(
    ("statement", "found"),
    [
        pytest.param({"Principal": "*"}, [("AWS", "*")], id="star"),
        pytest.param({"NotPrincipal": {"AWS": ROOT}}, [("AWS", "*")], id="NotPrincipal reads as anyone"),
        pytest.param({"Principal": {"AWS": [ROOT, "AROAEXAMPLE"]}}, [("AWS", ROOT), ("AWS", "AROAEXAMPLE")], id="list"),
        pytest.param({"Principal": {"Service": "ec2.amazonaws.com"}}, [("Service", "ec2.amazonaws.com")], id="svc"),
    ],
)
def test_principals(statement: dict[str, Any], found: list[tuple[str, str]]) -> None:
    assert principals(statement) == found


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/bob", True),
        (f"arn:aws:iam::{ACCOUNT}:role/team/ops", True),
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/bob", True),
        ("AIDAJQABLZS4A3QDU576Q", True),  # a deleted user, as IAM shows it in a trust policy
        (ROOT, False),
        (ACCOUNT, False),
    ],
)
def test_is_named_principal(value: str, named: bool) -> None:
    assert is_named_principal(value) is named


def test_conditions_on_ignores_the_case_of_the_key_and_the_operator() -> None:
    assert conditions_on({"Condition": {"StringLike": {"STS:sourceidentity": "*"}}}, "sts:SourceIdentity")
    assert not conditions_on({"Condition": {"StringLike": {"aws:SourceIdentity": "*"}}}, "sts:SourceIdentity")
    assert not conditions_on({}, "sts:SourceIdentity")


def trust(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(principal: Any, **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": ASSUME, **more}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(trust(allow({"AWS": "*"})), 'lets anyone assume it (Principal "*"); name only', id="AWS star"),
        pytest.param(trust(allow("*", Condition=REQUIRED)), "(its conditions may narrow who,", id="star narrowed"),
        pytest.param(trust({**allow({}), "NotPrincipal": {"AWS": ROOT}}), "lets anyone", id="Allow NotPrincipal"),
        pytest.param(
            trust(allow({"AWS": [ROOT, f"arn:aws:iam::{ACCOUNT}:user/bob"]})),
            f"names arn:aws:iam::{ACCOUNT}:user/bob directly, which lets that principal assume the role by itself",
            id="a user beside the root",
        ),
        pytest.param(
            trust(allow({"AWS": ROOT}), allow({"AWS": f"arn:aws:iam::{ACCOUNT}:role/ops"})),
            f"names arn:aws:iam::{ACCOUNT}:role/ops directly",
            id="a role in another statement",
        ),
        pytest.param(
            trust(allow({"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"})), "names", id="only a user: named, not untrusted"
        ),
        pytest.param(
            trust(allow({"Service": "ec2.amazonaws.com"})),
            "does not let principals of account 123456789012 assume it (it trusts Service:ec2.amazonaws.com)",
            id="a service only",
        ),
        pytest.param(
            trust(allow({"AWS": ROOT}), {"Effect": "Deny", "Principal": "*", "Action": "sts:*"}),
            "denies sts:AssumeRole to principals of account",
            id="a deny of everyone",
        ),
        pytest.param(
            trust({"Effect": "Allow", "Principal": {"AWS": "*"}, "NotAction": "s3:*"}), "lets anyone", id="NotAction"
        ),
    ],
)
def test_trust_problem(document: dict[str, Any], expected: str) -> None:
    assert expected in (trust_problem(document, ACCOUNT) or "")


@pytest.mark.parametrize(
    "principal",
    [pytest.param({"AWS": "*"}, id="anyone"), pytest.param({"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"}, id="a user")],
)
def test_each_bypass_says_the_fix(principal: dict[str, str]) -> None:
    problem = trust_problem(trust(allow({"AWS": ROOT}), allow(principal)), ACCOUNT)
    assert (problem or "").endswith(ASSUME_FIX)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(trust(allow({"AWS": ROOT}, Condition=REQUIRED)), id="the account root"),
        pytest.param(trust(allow({"AWS": ACCOUNT})), id="the account ID is the root too"),
    ],
)
def test_trusting_the_account_alone_is_no_problem(document: dict[str, Any]) -> None:
    assert trust_problem(document, ACCOUNT) is None


@pytest.mark.parametrize(
    ("document", "warned"),
    [
        pytest.param(trust(allow({"AWS": ROOT})), True, id="no condition"),
        pytest.param(trust(allow({"AWS": ROOT}, Condition=REQUIRED)), False, id="required by StringEquals"),
        pytest.param(
            trust(allow({"AWS": ROOT}, Condition={"StringLike": {"sts:SourceIdentity": "*"}})), False, id="StringLike"
        ),
        pytest.param(
            trust(allow({"AWS": ROOT}, Condition={"StringEquals": {"aws:SourceIdentity": "x"}})),
            True,
            id="another key is not it",
        ),
    ],
)
def test_source_identity_warning(document: dict[str, Any], warned: bool) -> None:
    assert (source_identity_warning(document, ACCOUNT) is not None) is warned


def test_the_source_identity_warning_says_the_fix() -> None:
    warning = source_identity_warning(trust(allow({"AWS": ROOT})), ACCOUNT) or ""
    assert warning.endswith(
        'add "Condition": {"StringEquals": {"sts:SourceIdentity": "${aws:username}"}} to the statement that '
        f"trusts {ROOT}, so each IAM user can only name itself"
    )
