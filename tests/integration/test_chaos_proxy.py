"""The chaos proxy in front of moto, driven by real boto3 clients: passthrough and every failure mode."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.support.aws import World, members, reset_moto, seed
from tests.support.chaos_proxy import Call, ChaosProxy, identify

ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=5)


@pytest.fixture
def direct(moto_url: str) -> World:
    """A fresh moto, seeded, with clients talking to it directly."""
    reset_moto(moto_url)
    return seed()


@pytest.fixture
def proxy(moto_url: str) -> Iterator[ChaosProxy]:
    with ChaosProxy(moto_url, seed=7) as running:
        yield running


def through(proxy: ChaosProxy, service: str) -> Any:
    """A boto3 client for `service` talking to moto through the proxy, without retries."""
    return boto3.client(service, endpoint_url=proxy.url, config=ONE_ATTEMPT)


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_passthrough_reaches_moto_and_is_recorded(proxy: ChaosProxy, direct: World) -> None:
    iam = through(proxy, "iam")
    iam.create_user(UserName="erin")

    assert direct.iam.get_user(UserName="erin")["User"]["UserName"] == "erin"
    assert through(proxy, "sts").get_caller_identity()["Account"] == "123456789012"
    assert [(c.service, c.operation, c.mode, c.status) for c in proxy.calls] == [
        ("iam", "CreateUser", "pass", 200),
        ("sts", "GetCallerIdentity", "pass", 200),
    ]
    assert all(isinstance(c, Call) and c.at > 0 for c in proxy.calls)
    assert proxy.count("CreateUser") == 1 and proxy.count("CreateUser", "error") == 0


def test_error_answers_without_touching_moto(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule("AddUserToGroup", "error")
    proxy.add_rule("RemoveUserFromGroup", "error", code="AccessDenied", status=403)
    iam = through(proxy, "iam")

    with pytest.raises(ClientError) as default:
        iam.add_user_to_group(GroupName="deploy-admins", UserName="alice")
    direct.iam.add_user_to_group(GroupName="auditors", UserName="bob")
    with pytest.raises(ClientError) as custom:
        iam.remove_user_from_group(GroupName="auditors", UserName="bob")

    assert error_of(default) == ("ServiceUnavailable", 503)
    assert default.value.response["ResponseMetadata"]["RequestId"].startswith("chaos-")
    assert error_of(custom) == ("AccessDenied", 403)
    assert members(direct.iam, "deploy-admins") == set()
    assert members(direct.iam, "auditors") == {"bob"}
    assert iam.get_group(GroupName="auditors")["Group"]["GroupName"] == "auditors"


def test_applied_then_error_changes_moto_but_reports_failure(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule("AddUserToGroup", "applied_then_error")

    with pytest.raises(ClientError) as failure:
        through(proxy, "iam").add_user_to_group(GroupName="deploy-admins", UserName="alice")

    assert error_of(failure) == ("ServiceUnavailable", 503)
    assert members(direct.iam, "deploy-admins") == {"alice"}
    assert proxy.count("AddUserToGroup", "applied_then_error") == 1


def test_throttle_and_errors_speak_each_protocol(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule("CreateGrant", "throttle", times=1)
    proxy.add_rule("CreateGrant", "error", times=1)
    proxy.add_rule("AddUserToGroup", "throttle")
    kms = through(proxy, "kms")
    grant = {"KeyId": direct.key_arn, "GranteePrincipal": direct.role_arn, "Operations": ["Decrypt"]}

    with pytest.raises(ClientError) as kms_throttle:
        kms.create_grant(**grant)
    with pytest.raises(ClientError) as kms_error:
        kms.create_grant(**grant)
    with pytest.raises(ClientError) as iam_throttle:
        through(proxy, "iam").add_user_to_group(GroupName="deploy-admins", UserName="alice")

    assert error_of(kms_throttle) == ("ThrottlingException", 400)
    assert error_of(kms_error) == ("KMSInternalException", 500)
    assert error_of(iam_throttle) == ("Throttling", 400)
    assert direct.kms.list_grants(KeyId=direct.key_arn)["Grants"] == []
    assert [c.service for c in proxy.calls] == ["kms", "kms", "iam"]


def test_slow_delays_then_passes(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule("AddUserToGroup", "slow", delay=0.3)
    iam = through(proxy, "iam")

    started = time.monotonic()
    iam.add_user_to_group(GroupName="deploy-admins", UserName="alice")
    assert time.monotonic() - started >= 0.3
    assert members(direct.iam, "deploy-admins") == {"alice"}
    assert [(c.mode, c.status) for c in proxy.calls] == [("slow", 200)]


def test_drop_applies_then_loses_the_answer(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule("AddUserToGroup", "drop", times=1)
    iam = through(proxy, "iam")

    with pytest.raises(ConnectionClosedError):
        iam.add_user_to_group(GroupName="deploy-admins", UserName="alice")
    assert members(direct.iam, "deploy-admins") == {"alice"}
    iam.add_user_to_group(GroupName="auditors", UserName="alice")  # the next request is answered again
    assert [(c.mode, c.status) for c in proxy.calls] == [("drop", None), ("pass", 200)]


def test_times_limits_a_rule(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule("AddUserToGroup", "error", times=2)
    iam = through(proxy, "iam")

    for _ in range(2):
        with pytest.raises(ClientError):
            iam.add_user_to_group(GroupName="deploy-admins", UserName="alice")
    iam.add_user_to_group(GroupName="deploy-admins", UserName="alice")

    assert members(direct.iam, "deploy-admins") == {"alice"}
    assert (proxy.count("AddUserToGroup", "error"), proxy.count("AddUserToGroup", "pass")) == (2, 1)


def test_moto_api_passes_through_every_rule(proxy: ChaosProxy, direct: World) -> None:
    proxy.add_rule(None, "error")
    with pytest.raises(ClientError):
        through(proxy, "iam").list_users()

    reset_moto(proxy.url)

    assert direct.iam.list_users()["Users"] == []
    assert [c.operation for c in proxy.calls] == ["ListUsers"]
    proxy.clear_rules()
    assert through(proxy, "iam").list_users()["Users"] == []


def modes_for(moto_url: str, seed_value: int) -> list[str]:
    """The modes a seeded randomized proxy picks for a fixed sequence of 24 requests."""
    reset_moto(moto_url)
    iam = boto3.client("iam")
    iam.create_user(UserName="alice")
    iam.create_group(GroupName="g")
    with ChaosProxy(moto_url, seed=seed_value) as proxy:
        proxy.randomize(["AddUserToGroup", "RemoveUserFromGroup"], rate=0.6, delay=0.0)
        client = through(proxy, "iam")
        for _ in range(12):
            for call in (client.add_user_to_group, client.remove_user_from_group):
                with contextlib.suppress(ClientError):
                    call(GroupName="g", UserName="alice")
        return [c.mode for c in proxy.calls]


def test_randomize_is_reproducible_given_the_seed(moto_url: str) -> None:
    first = modes_for(moto_url, 42)
    again = modes_for(moto_url, 42)
    other = modes_for(moto_url, 43)

    assert first == again
    assert len(first) == 24 and first != other
    assert "pass" in first and len(set(first) - {"pass"}) >= 2
    assert set(first) <= {"pass", "error", "applied_then_error", "throttle", "slow"}


def test_identify_reads_scope_target_and_action() -> None:
    scope = "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/{}/aws4_request, SignedHeaders=host, Signature=x"
    assert identify({"Authorization": scope.format("iam")}, b"Action=AddUserToGroup&Version=2010-05-08") == (
        "iam",
        "AddUserToGroup",
    )
    target = {"X-Amz-Target": "AWSIdentityStore.CreateGroupMembership"}
    assert identify(target, b"{}") == ("identitystore", "CreateGroupMembership")
    admin = {"X-Amz-Target": "SWBExternalService.CreateAccountAssignment", "Authorization": scope.format("sso")}
    assert identify(admin, b"{}") == ("sso", "CreateAccountAssignment")
    assert identify({"X-Amz-Target": "TrentService.CreateGrant"}, b"{}") == ("kms", "CreateGrant")
    assert identify({}, b"", "/?Action=GetCallerIdentity") == ("", "GetCallerIdentity")
