"""parse_catalog: the SPEC's example loads with defaults merged; every broken catalog names its key path."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.catalog import (
    Catalog,
    GroupResource,
    KeyResource,
    Kind,
    RoleResource,
    Strategy,
    load_catalog,
    parse_catalog,
)
from bot.errors import ConfigError

# The example catalog from SPEC.md, verbatim.
SPEC_CATALOG = """
defaults:                        # any resource key may be set here
  approval_channel: C0APPROVALS  # where approval requests are posted
  min_duration: 5m
  default_duration: 1h
  max_duration: 8h
  approvals_required: 1          # distinct approvers needed
  allow_self_approval: false     # a requester never counts as an approver unless true

identity:                        # how a Slack user becomes an IAM user
  strategy: email_tag            # email_tag | iam_username | static
  tag_key: email                 # email_tag: the IAM user whose tag `email` equals the Slack profile email
                                 # iam_username: the IAM user named like the local part of the Slack email
  static:                        # always consulted first: Slack user ID -> IAM user name
    U0ALICE: alice

approver_groups:
  platform: [U0BOB, U0CAROL]     # Slack user IDs, or Slack user-group IDs (S…)

resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    description: Deploy to production
    approvers: [platform]        # approver group names and/or Slack IDs
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    require_mfa: true
    max_duration: 4h
  payments-key:
    kind: kms_key
    key_id: alias/payments       # key ID, key ARN or alias
    operations: [Decrypt, GenerateDataKey]
    approvers: [U0DAVE, U0ERIN]
    approvals_required: 2
"""

ALL = ("deploy-admins", "prod-readonly", "payments-key")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(SPEC_CATALOG)


# -- the SPEC example ----------------------------------------------------------------------------


def test_spec_catalog_loads_every_kind(catalog: Catalog) -> None:
    assert set(catalog.resources) == set(ALL)
    assert isinstance(catalog.resources["deploy-admins"], GroupResource)
    assert isinstance(catalog.resources["prod-readonly"], RoleResource)
    assert isinstance(catalog.resources["payments-key"], KeyResource)
    assert [catalog.resources[name].kind for name in ALL] == [Kind.IAM_GROUP, Kind.IAM_ROLE, Kind.KMS_KEY]


@pytest.mark.parametrize(
    ("name", "key", "expected"),
    [
        pytest.param("deploy-admins", "max_duration", timedelta(hours=8), id="group-max-from-defaults"),
        pytest.param("prod-readonly", "max_duration", timedelta(hours=4), id="role-max-overrides-defaults"),
        pytest.param("payments-key", "max_duration", timedelta(hours=8), id="key-max-from-defaults"),
        pytest.param("deploy-admins", "min_duration", timedelta(minutes=5), id="min-from-defaults"),
        pytest.param("prod-readonly", "default_duration", timedelta(hours=1), id="default-from-defaults"),
        pytest.param("deploy-admins", "approvals_required", 1, id="one-approval-from-defaults"),
        pytest.param("payments-key", "approvals_required", 2, id="two-approvals-overrides-defaults"),
        pytest.param("payments-key", "approval_channel", "C0APPROVALS", id="channel-from-defaults"),
        pytest.param("deploy-admins", "allow_self_approval", False, id="self-approval-off"),
        pytest.param("prod-readonly", "require_mfa", True, id="mfa-on-where-set"),
        pytest.param("deploy-admins", "require_mfa", False, id="mfa-off-by-default"),
        pytest.param("deploy-admins", "pending_timeout", timedelta(hours=4), id="built-in-pending-timeout"),
        pytest.param("deploy-admins", "warn_before", timedelta(minutes=10), id="built-in-warn-before"),
        pytest.param("deploy-admins", "description", "Deploy to production", id="description-kept"),
        pytest.param("deploy-admins", "target", "deploy-admins", id="group-target-is-group-name"),
        pytest.param(
            "prod-readonly", "target", "arn:aws:iam::123456789012:role/prod-readonly", id="role-target-is-arn"
        ),
        pytest.param("payments-key", "target", "alias/payments", id="key-target-is-key-id"),
        pytest.param("payments-key", "operations", ("Decrypt", "GenerateDataKey"), id="key-operations"),
    ],
)
def test_spec_catalog_values_with_defaults_merged(catalog: Catalog, name: str, key: str, expected: object) -> None:
    assert getattr(catalog.resources[name], key) == expected


def test_spec_catalog_identity(catalog: Catalog) -> None:
    assert catalog.identity.strategy is Strategy.EMAIL_TAG
    assert catalog.identity.tag_key == "email"
    assert catalog.identity.static == {"U0ALICE": "alice"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("deploy-admins", {"U0BOB", "U0CAROL"}, id="group-flattened-to-members"),
        pytest.param("prod-readonly", {"U0BOB", "U0CAROL"}, id="same-group-same-members"),
        pytest.param("payments-key", {"U0DAVE", "U0ERIN"}, id="direct-slack-ids-kept"),
    ],
)
def test_approvers_of_flattens_groups(catalog: Catalog, name: str, expected: set[str]) -> None:
    assert catalog.approvers_of(name) == expected


def test_approvers_of_mixes_groups_ids_and_user_groups() -> None:
    text = """
    defaults: {approval_channel: C0APPROVALS}
    approver_groups:
      platform: [U0BOB, U0CAROL]
      security: [U0CAROL, S0SECURITY]
    resources:
      x: {kind: iam_group, group_name: g, approvers: [platform, security, W0DAVE]}
    """
    assert parse_catalog(text).approvers_of("x") == {"U0BOB", "U0CAROL", "S0SECURITY", "W0DAVE"}


def test_resource_lookup(catalog: Catalog) -> None:
    assert catalog.resource("deploy-admins") is catalog.resources["deploy-admins"]
    assert catalog.resource("nope") is None


def test_resource_settings_override_defaults_field_by_field() -> None:
    text = """
    defaults: {approval_channel: C0APPROVALS, max_duration: 2h, allow_self_approval: true}
    resources:
      x: {kind: iam_group, group_name: g, approvers: [U0BOB], approval_channel: G0PRIVATE, default_duration: 30m}
    """
    resource = parse_catalog(text).resources["x"]
    assert resource.approval_channel == "G0PRIVATE"
    assert resource.default_duration == timedelta(minutes=30)
    assert resource.max_duration == timedelta(hours=2)
    assert resource.allow_self_approval is True


def test_load_catalog_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(SPEC_CATALOG, encoding="utf-8")
    assert set(load_catalog(path).resources) == set(ALL)


def test_load_catalog_names_the_setting_when_the_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^ACCESSBOT_CATALOG: cannot read .*nope\.yaml"):
        load_catalog(tmp_path / "nope.yaml")


# -- broken catalogs -----------------------------------------------------------------------------

DELETE = object()


def edited(*edits: tuple[str, object]) -> str:
    """The SPEC catalog as YAML with each (dotted key path, value) set, or deleted when value is DELETE."""
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(SPEC_CATALOG))
    for path, value in edits:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


BROKEN = [
    pytest.param(
        edited(("resources.deploy-admins.max_duration", "forever")),
        "resources.deploy-admins.max_duration: 'forever' is not a duration",
        id="bad-resource-duration",
    ),
    pytest.param(
        edited(("defaults.min_duration", "banana")),
        "defaults.min_duration: 'banana' is not a duration",
        id="bad-default-duration",
    ),
    pytest.param(
        edited(("defaults.max_duration", 0)),
        "defaults.max_duration: write durations as text",
        id="duration-written-as-number",
    ),
    pytest.param(
        edited(("resources.prod-readonly.max_duration", "9999d")),
        "resources.prod-readonly.max_duration: a duration may be at most 3650d",
        id="duration-over-3650d",
    ),
    pytest.param(
        edited(("resources.x", {"kind": "s3_bucket", "approvers": ["platform"]})),
        "resources.x.kind: must be one of iam_group, iam_role, kms_key",
        id="unknown-kind",
    ),
    pytest.param(
        edited(("resources.x", {"group_name": "g", "approvers": ["platform"]})),
        "resources.x.kind: must be one of",
        id="missing-kind",
    ),
    pytest.param(
        edited(("resources.x", {"kind": "iam_group", "group_name": "g", "approvers": ["nobody"]})),
        "resources.x.approvers: unknown approver group 'nobody'",
        id="unknown-approver-group",
    ),
    pytest.param(
        edited(("resources.deploy-admins.approvers", DELETE)),
        "resources.deploy-admins.approvers: missing",
        id="missing-approvers",
    ),
    pytest.param(
        edited(("resources.deploy-admins.approvers", ["platform!"])),
        "resources.deploy-admins.approvers.0:",
        id="approver-ref-with-bad-characters",
    ),
    pytest.param(
        edited(("approver_groups.platform", [])),
        "approver_groups.platform: must be a non-empty list",
        id="empty-approver-group",
    ),
    pytest.param(
        edited(("approver_groups.platform", "U0BOB")),
        "approver_groups.platform: must be a non-empty list",
        id="approver-group-not-a-list",
    ),
    pytest.param(
        edited(("approver_groups.platform", ["U0BOB", "bob@example.com"])),
        "approver_groups.platform: not Slack user or user-group IDs: bob@example.com",
        id="approver-group-member-not-a-slack-id",
    ),
    pytest.param(
        edited(("approver_groups.platform", ["U0BOB", "U0CAROL\n"])),
        "approver_groups.platform: not Slack user or user-group IDs",
        id="approver-group-member-with-trailing-newline",
    ),
    pytest.param(
        edited(("approver_groups.Platform", ["U0BOB"])),
        "approver_groups.Platform: names use lowercase letters",
        id="approver-group-name-uppercase",
    ),
    pytest.param(
        edited(("approver_groups", ["U0BOB"])),
        "approver_groups: must be a mapping",
        id="approver-groups-not-a-mapping",
    ),
    pytest.param(edited(("extras", {"a": 1})), "extras: unknown top-level key", id="unknown-top-level-key"),
    pytest.param("resources: [unclosed\n", "catalog: not valid YAML at line 2", id="invalid-yaml"),
    pytest.param("defaults: {min_duration: 5m}\n\tresources: {}\n", "not valid YAML", id="tab-indentation"),
    pytest.param("a: 2024-02-30\n", "catalog: not valid YAML", id="yaml-impossible-date"),
    pytest.param("a: " + "1" * 5000 + "\n", "catalog: not valid YAML", id="yaml-integer-over-digit-limit"),
    pytest.param("[" * 1000, "catalog: not valid YAML", id="yaml-absurdly-deep-nesting"),
    pytest.param("- a\n- b\n", "catalog: the catalog must be a mapping", id="top-level-list"),
    pytest.param("just text\n", "catalog: the catalog must be a mapping", id="top-level-scalar"),
    pytest.param("", "resources: missing", id="empty-file"),
    pytest.param(edited(("resources", DELETE)), "resources: missing", id="no-resources-key"),
    pytest.param(edited(("resources", {})), "resources: missing", id="empty-resources"),
    pytest.param(edited(("resources", ["deploy-admins"])), "resources: must be a mapping", id="resources-list"),
    pytest.param(
        edited(("resources.deploy-admins", "iam_group")),
        "resources.deploy-admins: must be a mapping",
        id="resource-not-a-mapping",
    ),
    pytest.param(
        edited(("resources.Deploy Admins", {"kind": "iam_group", "group_name": "g", "approvers": ["platform"]})),
        "resources.Deploy Admins: names use lowercase letters",
        id="resource-name-not-allowed",
    ),
    pytest.param(
        edited(("resources.x\n", {"kind": "iam_group", "group_name": "g", "approvers": ["platform"]})),
        "names use lowercase letters",
        id="resource-name-with-trailing-newline",
    ),
    pytest.param(
        edited(("defaults.approval_channel", DELETE)),
        "resources.deploy-admins.approval_channel: missing",
        id="missing-approval-channel",
    ),
    pytest.param(
        edited(("defaults.approval_channel", "#approvals")),
        "defaults.approval_channel:",
        id="approval-channel-given-by-name",
    ),
    pytest.param(
        edited(("resources.deploy-admins.min_duration", "9h")),
        "resources.deploy-admins: durations must satisfy min_duration <= default_duration <= max_duration",
        id="min-over-max",
    ),
    pytest.param(
        edited(("resources.prod-readonly.default_duration", "5h")),
        "resources.prod-readonly: durations must satisfy",
        id="default-over-resource-max",
    ),
    pytest.param(
        edited(("resources.payments-key.operations", ["Decrypt", "Explode"])),
        "resources.payments-key.operations: unknown KMS operation(s) Explode",
        id="unknown-kms-operation",
    ),
    pytest.param(
        edited(("resources.payments-key.operations", ["Decrypt", "CreateGrant"])),
        "resources.payments-key.operations: CreateGrant would let the grantee make or remove grants of its own",
        id="kms-create-grant-refused",
    ),
    pytest.param(
        edited(("resources.payments-key.operations", ["RevokeGrant", "RetireGrant"])),
        "resources.payments-key.operations: RetireGrant, RevokeGrant would let the grantee",
        id="kms-retire-and-revoke-grant-refused",
    ),
    pytest.param(
        edited(("resources.payments-key.operations", [])),
        "resources.payments-key.operations:",
        id="no-kms-operations",
    ),
    pytest.param(
        edited(("resources.payments-key.key_id", DELETE)),
        "resources.payments-key.key_id: missing",
        id="missing-key-id",
    ),
    pytest.param(
        edited(("resources.prod-readonly.role_arn", "arn:aws:iam::1234:role/prod-readonly")),
        "resources.prod-readonly.role_arn:",
        id="role-arn-with-short-account",
    ),
    pytest.param(
        edited(("resources.prod-readonly.role_arn", "prod-readonly")),
        "resources.prod-readonly.role_arn:",
        id="role-name-instead-of-arn",
    ),
    pytest.param(
        edited(("resources.prod-readonly.role_arn", "arn:aws:iam::123456789012:user/alice")),
        "resources.prod-readonly.role_arn:",
        id="user-arn-instead-of-role-arn",
    ),
    pytest.param(
        edited(("resources.deploy-admins.group_name", DELETE)),
        "resources.deploy-admins.group_name: missing",
        id="missing-group-name",
    ),
    pytest.param(
        edited(("resources.payments-key.approvals_required", 3)),
        "resources.payments-key.approvals_required: 3 approvals needed but only 2 approver(s) listed",
        id="more-approvals-than-approvers",
    ),
    pytest.param(
        edited(("resources.deploy-admins.approvals_required", 0)),
        "resources.deploy-admins.approvals_required:",
        id="zero-approvals",
    ),
    pytest.param(
        edited(("resources.deploy-admins.colour", "blue")),
        "resources.deploy-admins.colour: unknown key",
        id="unknown-key-in-resource",
    ),
    pytest.param(
        edited(("resources.deploy-admins.role_arn", "arn:aws:iam::123456789012:role/x")),
        "resources.deploy-admins.role_arn: unknown key",
        id="key-of-another-kind",
    ),
    pytest.param(edited(("defaults.kind", "iam_group")), "defaults.kind: unknown key", id="kind-in-defaults"),
    pytest.param(edited(("defaults", "all")), "defaults: must be a mapping", id="defaults-not-a-mapping"),
    pytest.param(edited(("identity.strategy", "ldap")), "identity.strategy:", id="unknown-identity-strategy"),
    pytest.param(edited(("identity.colour", "blue")), "identity.colour: unknown key", id="unknown-identity-key"),
    pytest.param(
        edited(("identity.static", {"alice": "alice"})),
        "identity.static.alice",
        id="static-mapping-key-not-a-slack-id",
    ),
    pytest.param(
        edited(("identity.static", {"U0ALICE": "alice smith"})),
        "identity.static.U0ALICE:",
        id="static-mapping-value-not-an-iam-name",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_catalog_names_the_key_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text)
    assert expected in str(caught.value)


def test_every_problem_is_listed_at_once() -> None:
    text = edited(("defaults.min_duration", "banana"), ("resources.deploy-admins.colour", "blue"), ("extras", 1))
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text)
    message = str(caught.value)
    for expected in ("defaults.min_duration:", "resources.deploy-admins.colour: unknown key", "extras:"):
        assert expected in message


def test_resources_that_are_not_a_mapping_are_not_also_called_missing() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(edited(("resources", ["deploy-admins"])))
    assert "resources: missing" not in str(caught.value)


def test_approvals_check_skipped_when_a_user_group_may_approve() -> None:
    """A Slack user group (S…) has an unknown number of members, so any approvals_required may be met."""
    text = edited(("resources.payments-key.approvers", ["U0DAVE", "S0PAYMENTS"]))
    assert parse_catalog(text).resources["payments-key"].approvals_required == 2


def test_error_message_names_the_source() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/accessbot/catalog\.yaml: not valid YAML"):
        parse_catalog("resources: [", source="/etc/accessbot/catalog.yaml")


# -- properties: nothing but ConfigError, whatever the text ----------------------------------------

KEYS = [
    "defaults", "identity", "approver_groups", "resources", "kind", "group_name", "role_arn", "key_id",
    "operations", "approvers", "approval_channel", "min_duration", "default_duration", "max_duration",
    "approvals_required", "allow_self_approval", "require_mfa", "pending_timeout", "warn_before",
    "description", "strategy", "tag_key", "static", "platform", "x", "U0BOB",
]  # fmt: skip
VALUES = [
    "iam_group", "iam_role", "kms_key", "1h", "5m", "0s", "C0APPROVALS", "U0BOB", "S0TEAM", "platform",
    "Decrypt", "arn:aws:iam::123456789012:role/r", "alias/k", "email_tag", "static",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(VALUES)
)
keys = st.sampled_from(KEYS) | st.text(max_size=8) | st.integers(min_value=-3, max_value=3) | st.booleans()
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


def _parse_or_config_error(text: str) -> None:
    try:
        parse_catalog(text)
    except ConfigError as exc:
        assert str(exc)


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    _parse_or_config_error(text)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, trees, max_size=5))
def test_arbitrary_nested_mappings_raise_only_config_error(data: dict[Any, Any]) -> None:
    _parse_or_config_error(yaml.safe_dump(data))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    defaults=st.dictionaries(st.sampled_from(KEYS), trees, max_size=4),
    resource=st.dictionaries(st.sampled_from(KEYS), trees, max_size=6),
    groups=st.dictionaries(keys, trees, max_size=3),
)
def test_mutated_spec_catalog_raises_only_config_error(
    defaults: dict[str, Any], resource: dict[str, Any], groups: dict[Any, Any]
) -> None:
    """Near-valid catalogs reach the resource and approver checks, not just the top-level ones."""
    data = yaml.safe_load(SPEC_CATALOG)
    data["defaults"].update(defaults)
    data["resources"]["deploy-admins"].update(resource)
    data["approver_groups"].update(groups)
    _parse_or_config_error(yaml.safe_dump(data))
