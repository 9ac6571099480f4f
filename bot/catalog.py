"""The catalog file: what may be requested, by whom, approved by whom; loaded with clear errors."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from bot.durations import parse_duration
from bot.errors import ConfigError

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SlackUserId = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]
ChannelId = Annotated[str, Field(pattern=r"^[CG][A-Z0-9]{2,}$")]
ResourceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
# An approver entry: an approver group name, a Slack user ID (U/W...) or a Slack user-group ID (S...).
ApproverRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
SLACK_ID = r"^[UWS][A-Z0-9]{2,}$"

KMS_OPERATIONS = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DescribeKey",
        "CreateGrant",
        "RetireGrant",
        "DeriveSharedSecret",
    }
)


class Kind(StrEnum):
    """The three kinds of access accessbot grants."""

    IAM_GROUP = "iam_group"
    IAM_ROLE = "iam_role"
    KMS_KEY = "kms_key"


class AutoApprove(BaseModel):
    """`auto_approve: {max_duration: 30m}`: requests up to that long need no person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_duration: Duration


class RateLimit(BaseModel):
    """`rate_limit: {requests: 10, per: 1h}`: at most that many requests per user in that window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int = Field(ge=1, le=10000)
    per: Duration


class Settings(BaseModel):
    """Keys that may be set per resource or once under `defaults`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_channel: ChannelId | None = None
    min_duration: Duration = timedelta(minutes=5)
    default_duration: Duration = timedelta(hours=1)
    max_duration: Duration = timedelta(hours=8)
    approvals_required: int = Field(default=1, ge=1, le=10)
    allow_self_approval: bool = False
    require_mfa: bool = False
    approvers: tuple[ApproverRef, ...] = ()
    pending_timeout: Duration = timedelta(hours=4)
    warn_before: Duration = timedelta(minutes=10)
    description: str = Field(default="", max_length=300)
    requesters: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")], ...] = ()
    max_extensions: int = Field(default=2, ge=0, le=20)
    auto_approve: bool | AutoApprove = False
    auto_approve_limit: int = Field(default=3, ge=0, le=1000)
    remind_after: Duration = timedelta(minutes=30)
    max_reminders: int = Field(default=3, ge=0, le=20)
    escalate_to: tuple[ApproverRef, ...] = ()
    escalate_after: Duration = timedelta(hours=1)
    break_glass: bool = False
    audit_channel: ChannelId | None = None
    rate_limit: RateLimit = RateLimit(requests=10, per=timedelta(hours=1))
    max_open_requests: int = Field(default=5, ge=1, le=1000)

    @property
    def auto_approve_max(self) -> timedelta | None:
        """The longest duration approved without a person, or None when nothing is."""
        if isinstance(self.auto_approve, AutoApprove):
            return self.auto_approve.max_duration
        return self.max_duration if self.auto_approve else None


class _Resource(Settings):
    @model_validator(mode="after")
    def _durations_in_order(self) -> _Resource:
        if not self.min_duration <= self.default_duration <= self.max_duration:
            raise ValueError("durations must satisfy min_duration <= default_duration <= max_duration")
        if self.approval_channel is None:
            raise ValueError("approval_channel: missing (set it on the resource or under defaults)")
        if not self.approvers:
            raise ValueError("approvers: missing (list approver groups or Slack IDs)")
        return self


class GroupResource(_Resource):
    """Membership of an IAM group."""

    kind: Literal[Kind.IAM_GROUP]
    group_name: str = Field(pattern=r"^[A-Za-z0-9_+=,.@-]{1,128}$")

    @property
    def target(self) -> str:
        """The AWS name this resource grants."""
        return self.group_name


class RoleResource(_Resource):
    """The right to assume an IAM role."""

    kind: Literal[Kind.IAM_ROLE]
    role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")

    @property
    def target(self) -> str:
        """The AWS name this resource grants."""
        return self.role_arn


class KeyResource(_Resource):
    """Use of a KMS key for named operations."""

    kind: Literal[Kind.KMS_KEY]
    key_id: str = Field(min_length=1, max_length=2048)
    operations: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_operations(self) -> KeyResource:
        unknown = sorted(set(self.operations) - KMS_OPERATIONS)
        if unknown:
            raise ValueError(f"operations: unknown KMS operation(s) {', '.join(unknown)}")
        return self

    @property
    def target(self) -> str:
        """The AWS name this resource grants."""
        return self.key_id


Resource = Annotated[GroupResource | RoleResource | KeyResource, Field(discriminator="kind")]


class Strategy(StrEnum):
    """How a Slack user becomes an IAM user."""

    EMAIL_TAG = "email_tag"
    IAM_USERNAME = "iam_username"
    STATIC = "static"


class Identity(BaseModel):
    """How a Slack user is mapped to an IAM user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Strategy = Strategy.EMAIL_TAG
    tag_key: str = Field(default="email", min_length=1, max_length=128)
    static: dict[SlackUserId, Annotated[str, Field(pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$")]] = Field(
        default_factory=dict
    )


class Catalog(BaseModel):
    """The whole catalog, with defaults already merged into every resource."""

    model_config = ConfigDict(frozen=True)

    defaults: Settings
    identity: Identity
    approver_groups: dict[ResourceName, tuple[Annotated[str, Field(pattern=SLACK_ID)], ...]]
    resources: dict[str, GroupResource | RoleResource | KeyResource]

    def resource(self, name: str) -> GroupResource | RoleResource | KeyResource | None:
        """The resource of that name, or None."""
        return self.resources.get(name)

    def approvers_of(self, name: str, *, escalated: bool = False) -> frozenset[str]:
        """Slack user and user-group IDs that may approve the resource (with escalate_to once escalated)."""
        resource = self.resources[name]
        refs = resource.approvers + (resource.escalate_to if escalated else ())
        return self._flatten(refs)

    def requesters_of(self, name: str) -> frozenset[str] | None:
        """Slack user and user-group IDs that may request the resource, or None for everyone."""
        refs = self.resources[name].requesters
        return self._flatten(refs) if refs else None

    def _flatten(self, refs: tuple[str, ...]) -> frozenset[str]:
        found: set[str] = set()
        for ref in refs:
            found.update(self.approver_groups.get(ref, (ref,)))
        return frozenset(found)


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file; raise ConfigError listing every problem by key path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"ACCESSBOT_CATALOG: cannot read {path}: {exc.strerror or exc}") from None
    return parse_catalog(text, source=str(path))


def parse_catalog(text: str, *, source: str = "catalog") -> Catalog:
    """Validate catalog YAML text; raise ConfigError listing every problem by key path."""
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # PyYAML raises ValueError for impossible dates (2024-02-30) and integers over Python's digit
        # limit, and RecursionError for absurdly deep nesting: all of them are bad catalog text.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the catalog must be a mapping with a 'resources' key")
    problems: list[str] = []
    unknown = sorted(str(k) for k in raw if k not in {"defaults", "identity", "approver_groups", "resources"})
    problems += [f"{key}: unknown top-level key" for key in unknown]

    defaults_raw = _mapping(raw.get("defaults"), "defaults", problems)
    defaults = _validate(Settings, defaults_raw, "defaults", problems) or Settings()
    identity = _validate(Identity, _mapping(raw.get("identity"), "identity", problems), "identity", problems)
    groups = _approver_groups(raw.get("approver_groups"), problems)
    resources: dict[str, GroupResource | RoleResource | KeyResource] = {}
    resources_raw = _mapping(raw.get("resources"), "resources", problems)
    if not resources_raw and not any(p.startswith("resources:") for p in problems):
        problems.append("resources: missing (the catalog lists at least one resource)")
    for name, body in resources_raw.items():
        path = f"resources.{name}"
        if not isinstance(name, str) or not _matches(name, r"^[a-z0-9][a-z0-9._-]{0,63}$"):
            problems.append(f"{path}: names use lowercase letters, digits, '.', '_' and '-' (at most 64)")
            continue
        merged = {**defaults_raw, **_mapping(body, path, problems)}
        resource = _validate_resource(merged, path, problems)
        if resource is None:
            continue
        problems += _check_approvers(resource, path, groups)
        resources[name] = resource
    if problems:
        raise ConfigError("; ".join(problems))
    assert identity is not None
    return Catalog(defaults=defaults, identity=identity, approver_groups=groups, resources=resources)


def _validate_resource(
    merged: dict[str, Any], path: str, problems: list[str]
) -> GroupResource | RoleResource | KeyResource | None:
    kind = merged.get("kind")
    model: type[_Resource]
    if kind == Kind.IAM_GROUP:
        model = GroupResource
    elif kind == Kind.IAM_ROLE:
        model = RoleResource
    elif kind == Kind.KMS_KEY:
        model = KeyResource
    else:
        problems.append(f"{path}.kind: must be one of iam_group, iam_role, kms_key")
        return None
    result = _validate(model, merged, path, problems)
    assert result is None or isinstance(result, GroupResource | RoleResource | KeyResource)
    return result


def _check_approvers(resource: _Resource, path: str, groups: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    ids: set[str] = set()
    for key in ("approvers", "escalate_to", "requesters"):
        for ref in getattr(resource, key):
            if ref in groups:
                found = set(groups[ref])
            elif _matches(ref, SLACK_ID):
                found = {ref}
            else:
                problems.append(
                    f"{path}.{key}: unknown approver group '{ref}' (define it under approver_groups or use a Slack ID)"
                )
                continue
            if key == "approvers":
                ids |= found
    plain_users = {i for i in ids if not i.startswith("S")}
    if not problems and plain_users == ids and len(ids) < resource.approvals_required:
        problems.append(
            f"{path}.approvals_required: {resource.approvals_required} approvals needed"
            f" but only {len(ids)} approver(s) listed"
        )
    return problems


def _approver_groups(raw: object, problems: list[str]) -> dict[str, tuple[str, ...]]:
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in _mapping(raw, "approver_groups", problems).items():
        path = f"approver_groups.{name}"
        if not _matches(str(name), r"^[a-z0-9][a-z0-9._-]{0,63}$"):
            problems.append(f"{path}: names use lowercase letters, digits, '.', '_' and '-' (at most 64)")
            continue
        if not isinstance(members, list) or not members:
            problems.append(f"{path}: must be a non-empty list of Slack user or user-group IDs")
            continue
        bad = [str(m) for m in members if not isinstance(m, str) or not _matches(m, SLACK_ID)]
        if bad:
            problems.append(f"{path}: not Slack user or user-group IDs: {', '.join(bad)}")
            continue
        groups[str(name)] = tuple(members)
    return groups


def _mapping(value: object, path: str, problems: list[str]) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a mapping")
        return {}
    return value


def _validate(model: type[BaseModel], data: dict[str, Any], path: str, problems: list[str]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(exc, path))
        return None


def _describe(exc: ValidationError, path: str) -> Iterable[str]:
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        # A whole-model check names its key at the start of its message ("approvers: missing"): join it to the path.
        field = re.match(r"([a-z_]+): (.*)", message, re.DOTALL)
        if not loc and field is not None:
            loc, message = field.group(1), field.group(2)
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "missing"
        yield f"{path}.{loc}: {message}" if loc else f"{path}: {message}"


def _matches(value: str, pattern: str) -> bool:
    # fullmatch: with re.match, `$` would also accept a trailing newline ("U0BOB\n").
    return re.fullmatch(pattern, value) is not None
