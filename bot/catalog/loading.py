"""Reading the catalog file: YAML to models, with every problem listed by key path."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.catalog.identity import Identity, IdentityCenter, MemberAccount
from bot.catalog.models import (
    SLACK_ID,
    AnyResource,
    Catalog,
    GroupResource,
    KeyResource,
    Kind,
    PermissionSetResource,
    ResourceBase,
    RoleResource,
    Settings,
    SsoGroupResource,
)
from bot.errors import ConfigError

MODELS: dict[str, type[ResourceBase]] = {
    Kind.IAM_GROUP: GroupResource,
    Kind.IAM_ROLE: RoleResource,
    Kind.KMS_KEY: KeyResource,
    Kind.SSO_PERMISSION_SET: PermissionSetResource,
    Kind.SSO_GROUP: SsoGroupResource,
}


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
    unknown = sorted(
        str(k)
        for k in raw
        if k not in {"defaults", "identity", "identity_center", "approver_groups", "auditors", "resources", "accounts"}
    )
    problems += [f"{key}: unknown top-level key" for key in unknown]

    defaults_raw = _mapping(raw.get("defaults"), "defaults", problems)
    defaults = _validate(Settings, defaults_raw, "defaults", problems) or Settings()
    identity = _validate(Identity, _mapping(raw.get("identity"), "identity", problems), "identity", problems)
    center = None
    if raw.get("identity_center") is not None:
        center_raw = _mapping(raw.get("identity_center"), "identity_center", problems)
        center = _validate(IdentityCenter, center_raw, "identity_center", problems)
    groups = _approver_groups(raw.get("approver_groups"), problems)
    auditors = _auditors(raw.get("auditors"), problems)
    accounts = _accounts(raw.get("accounts"), problems)
    resources: dict[str, AnyResource] = {}
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
    return Catalog(
        defaults=defaults,
        identity=identity,
        approver_groups=groups,
        resources=resources,
        identity_center=center,
        auditors=auditors,
        accounts=accounts,
    )


def _auditors(raw: object, problems: list[str]) -> tuple[str, ...]:
    """`auditors`: Slack user or user-group IDs who may read any grant's activity report."""
    members = raw if isinstance(raw, list) else [] if raw is None else [raw]
    bad = [str(m) for m in members if not isinstance(m, str) or not _matches(m, SLACK_ID)]
    problems += [f"auditors: '{m}' is not a Slack user or user-group ID (U…, W… or S…)" for m in bad]
    return tuple(m for m in members if isinstance(m, str) and m not in bad)


def _validate_resource(merged: dict[str, Any], path: str, problems: list[str]) -> AnyResource | None:
    kind = merged.get("kind")
    model = MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        problems.append(f"{path}.kind: must be one of {', '.join(MODELS)}")
        return None
    result = _validate(model, merged, path, problems)
    assert result is None or isinstance(
        result, GroupResource | RoleResource | KeyResource | PermissionSetResource | SsoGroupResource
    )
    return result


def _check_approvers(resource: ResourceBase, path: str, groups: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    ids: set[str] = set()
    for key in ("approvers", "escalate_to", "requesters", "delegates"):
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


def _accounts(raw: object, problems: list[str]) -> dict[str, MemberAccount]:
    """`accounts`: account ID (12 digits, quoted in YAML) -> the role the bot assumes there."""
    accounts: dict[str, MemberAccount] = {}
    for account, body in _mapping(raw, "accounts", problems).items():
        path = f"accounts.{account}"
        if not isinstance(account, str) or not _matches(account, r"^\d{12}$"):
            problems.append(f'{path}: an account ID is 12 digits, written in quotes ("012345678901")')
            continue
        member = _validate(MemberAccount, _mapping(body, path, problems), path, problems)
        if member is None:
            continue
        theirs = member.role_arn.split(":")[4]  # the pattern made it arn:aws:iam::<12 digits>:role/...
        if theirs != account:
            problems.append(f"{path}.role_arn: the role is in account {theirs}, not {account}")
            continue
        accounts[account] = member
    return accounts


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
