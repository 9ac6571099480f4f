"""Use of a KMS key: a named KMS grant for the user's ARN."""

from __future__ import annotations

from typing import Any

from bot.aws.errors import AwsError, aws_call
from bot.aws.granters.base import Ended, GrantSpec, is_alias

KEY_STATES = {
    "Disabled": "disabled",
    "PendingDeletion": "scheduled for deletion",
    "PendingReplicaDeletion": "scheduled for deletion",
    "PendingImport": "waiting for its key material",
    "Unavailable": "unavailable",
    "Creating": "still being created",
    "Updating": "being updated",
}


class KeyGranter:
    """Use of a KMS key, as a named KMS grant for the user's ARN."""

    shared = False

    def __init__(self, kms: Any) -> None:
        self._kms = kms

    def key_arn(self, key_id: str) -> str:
        """Resolve a key ID, ARN or alias to the key's ARN; refuse a key that is missing or not enabled."""
        meta = self._describe(key_id)
        state = str(meta.get("KeyState", ""))
        if state != "Enabled":
            raise AwsError(
                f"the KMS key {key_id} is {KEY_STATES.get(state, state or 'not enabled')}, so no grant can be made",
                operation="kms:DescribeKey",
                code="KeyNotEnabled",
            )
        return str(meta["Arn"])

    def _describe(self, key_id: str) -> dict[str, Any]:
        try:
            with aws_call("kms:DescribeKey"):
                return dict(self._kms.describe_key(KeyId=key_id)["KeyMetadata"])
        except AwsError as exc:
            if exc.gone:
                raise AwsError(
                    f"the KMS key {key_id} does not exist (an admin must create it or fix the catalog)",
                    operation=exc.operation,
                    code=exc.code,
                ) from exc
            raise

    def locate(self, spec: GrantSpec) -> str | None:
        """The ARN of the key the alias or ID names now; recorded so the revoke finds it even if the alias moves."""
        return self.key_arn(spec.target)

    def lift(self, spec: GrantSpec) -> None:
        """Nothing is left behind."""

    def _key_holding(self, spec: GrantSpec) -> str | None:
        """The ARN of the key that holds this request's grant, searching every key in the region."""
        with aws_call("kms:ListKeys"):
            keys = [k["KeyArn"] for page in self._kms.get_paginator("list_keys").paginate() for k in page["Keys"]]
        for key_arn in keys:
            try:
                if self._existing(key_arn, spec):
                    return str(key_arn)
            except AwsError as exc:
                if not exc.gone:
                    raise
        return None

    def _existing(self, key_arn: str, spec: GrantSpec, *, exact: bool = False) -> list[str]:
        """This request's grants on the key: its name and its grantee (with `exact`, also its operations).

        A grant of the same name for anyone else (a second installation, a recreated database) is not the
        bot's to adopt or revoke.
        """
        with aws_call("kms:ListGrants"):
            pages = self._kms.get_paginator("list_grants").paginate(KeyId=key_arn, GranteePrincipal=spec.iam_user_arn)
            return [
                g["GrantId"]
                for page in pages
                for g in page["Grants"]
                if g.get("Name") == spec.name
                and g.get("GranteePrincipal") == spec.iam_user_arn
                and (not exact or sorted(g.get("Operations", [])) == sorted(spec.operations))
            ]

    def holds(self, spec: GrantSpec) -> bool:
        """Whether this request's grant exists on the key."""
        return bool(self._existing(spec.target_arn or self.key_arn(spec.target), spec))

    def grant(self, spec: GrantSpec) -> str | None:
        """Create the grant on the located key (or find the one a crashed attempt created); return its GrantId."""
        key_arn = spec.target_arn or self.key_arn(spec.target)
        existing = self._existing(key_arn, spec, exact=True)
        if existing:
            return existing[0]
        with aws_call("kms:CreateGrant"):
            answer = self._kms.create_grant(
                KeyId=key_arn,
                GranteePrincipal=spec.iam_user_arn,
                Operations=list(spec.operations),
                Name=spec.name,
            )
        return str(answer["GrantId"])

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Revoke the grant by its stored GrantId, and every other grant of this request, on the recorded key."""
        key_arn = spec.target_arn or self._legacy_key(spec)
        if key_arn is None:
            return Ended()
        # Every grant of this request, not only the stored one: two activations that raced (or a crash after
        # CreateGrant) may have left another, and none may outlive the request.
        try:
            grant_ids = dict.fromkeys([*([grant_ref] if grant_ref else []), *self._existing(key_arn, spec)])
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the key itself is gone, and every grant on it with it
            raise
        for grant_id in grant_ids:
            try:
                with aws_call("kms:RevokeGrant"):
                    self._kms.revoke_grant(KeyId=key_arn, GrantId=grant_id)
            except AwsError as exc:
                if not exc.gone:
                    raise
        return Ended()

    def _legacy_key(self, spec: GrantSpec) -> str | None:
        """The key of a grant recorded before key ARNs were stored: resolve the catalog's key ID now."""
        try:
            return self.key_arn(spec.target)
        except AwsError as exc:
            if exc.code == "KeyNotEnabled":
                return str(self._describe(spec.target)["Arn"])
            if exc.gone and is_alias(spec.target):
                # A deleted alias leaves its key, and the grant on it, in place: find that key.
                return self._key_holding(spec)
            if exc.gone:
                return None  # the key itself is gone, and every grant on it with it
            raise
