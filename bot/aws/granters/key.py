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

    def _existing(self, key_arn: str, spec: GrantSpec) -> list[str]:
        """The GrantIds of this request's grants on the key (see _mine)."""
        return [str(g["GrantId"]) for g in self._mine(key_arn, spec)]

    def _mine(self, key_arn: str, spec: GrantSpec) -> list[dict[str, Any]]:
        """This request's grants on the key: its name and its grantee.

        A grant of the same name for anyone else (a second installation, a recreated database) is not the
        bot's to adopt or revoke.
        """
        with aws_call("kms:ListGrants"):
            pages = self._kms.get_paginator("list_grants").paginate(KeyId=key_arn, GranteePrincipal=spec.iam_user_arn)
            return [
                g
                for page in pages
                for g in page["Grants"]
                if g.get("Name") == spec.name and g.get("GranteePrincipal") == spec.iam_user_arn
            ]

    def holds(self, spec: GrantSpec) -> bool:
        """Whether this request's grant exists on the key."""
        return bool(self._existing(spec.target_arn or self.key_arn(spec.target), spec))

    def grant(self, spec: GrantSpec) -> str | None:
        """Create the grant on the located key (or adopt the one a crashed attempt created); return its GrantId.

        Afterwards exactly one grant of this request is on the key, the one returned: revoke relies on it
        and revokes that GrantId alone. So a grant an earlier attempt left with other operations (the catalog
        changed between a crash and the retry), or a second copy, is revoked here.
        """
        key_arn = spec.target_arn or self.key_arn(spec.target)
        mine = self._mine(key_arn, spec)
        exact = [str(g["GrantId"]) for g in mine if sorted(g.get("Operations", [])) == sorted(spec.operations)]
        if exact:
            kept = exact[0]
        else:
            answer = self._create(key_arn, spec)
            kept = str(answer["GrantId"])
            if answer.get("ResponseMetadata", {}).get("RetryAttempts", 0):
                # botocore sent CreateGrant more than once: an attempt that AWS applied but answered with an
                # error may have made a copy (KMS answers a retry of the same Name and parameters with the
                # same grant; not every implementation does). Look again, and keep only the one returned.
                mine = self._mine(key_arn, spec)
        self._revoke_all(key_arn, [str(g["GrantId"]) for g in mine if g["GrantId"] != kept])
        return kept

    def revoke(self, spec: GrantSpec, grant_ref: str | None) -> Ended:
        """Revoke the request's grant by its GrantId, on the recorded key; list its grants only when in doubt.

        grant() leaves exactly one grant of the request on the key and that GrantId is stored, so revoking it
        is the whole end, in one call: no ListGrants, whose pages grow with the grants on the key. The grants
        of this request are listed (filtered by grantee) and every one revoked, so that none outlives the
        request, only when there is doubt: no GrantId was stored (the undo of a grant that failed partway, or
        of one that crashed before it was recorded) or the stored one is not found (revoked by someone else).
        Without a stored GrantId the ID is first asked of AWS by sending the same CreateGrant again (see
        _grant_id_again): ListGrants is eventually consistent, so a grant made seconds ago may not be listed yet.
        A copy that a version before this rule left beside a stored grant (only when a crashed grant was
        retried with other operations: KMS answers a retry of the same Name and parameters with the same
        grant) outlives its request as an orphan that reconcile reports and `--fix` revokes.
        """
        key_arn = spec.target_arn or self._legacy_key(spec)
        if key_arn is None:
            return Ended()
        stored = bool(grant_ref)
        if not stored:
            grant_ref = self._grant_id_again(key_arn, spec)
        if grant_ref:
            try:
                with aws_call("kms:RevokeGrant"):
                    self._kms.revoke_grant(KeyId=key_arn, GrantId=grant_ref)
                if stored:
                    return Ended()
            except AwsError as exc:
                if not exc.gone:
                    raise
        try:
            grant_ids = self._existing(key_arn, spec)
        except AwsError as exc:
            if exc.gone:
                return Ended()  # the key itself is gone, and every grant on it with it
            raise
        self._revoke_all(key_arn, grant_ids)
        return Ended()

    def _create(self, key_arn: str, spec: GrantSpec) -> dict[str, Any]:
        """CreateGrant for the request, always with the same parameters and Name (see _grant_id_again)."""
        with aws_call("kms:CreateGrant"):
            return dict(
                self._kms.create_grant(
                    KeyId=key_arn,
                    GranteePrincipal=spec.iam_user_arn,
                    Operations=list(spec.operations),
                    Name=spec.name,
                )
            )

    def _grant_id_again(self, key_arn: str, spec: GrantSpec) -> str | None:
        """The GrantId of the request's grant, from the identical CreateGrant sent again; None when AWS refuses it.

        A CreateGrant that AWS applied but answered with an error (or a crash before its answer was recorded)
        leaves no GrantId, and ListGrants may not show the grant for a while ("Grants in AWS KMS", "Eventual
        consistency": a change can take up to five minutes to be seen throughout KMS). The KMS API Reference
        (CreateGrant, Name): "When this value is present, you can retry a CreateGrant request with identical
        parameters; if the grant already exists, the original GrantId is returned without creating a new
        grant" (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateGrant.html). So the same request
        again names the grant to revoke. When the first CreateGrant never took effect this one makes the
        grant, revoked at once by the caller: access the request was approved for, for the few minutes KMS
        may take to see the revoke. A key AWS no longer lets grants be made on (disabled, pending deletion)
        answers with an error that is not transient: the caller then lists the grants instead.
        """
        try:
            return str(self._create(key_arn, spec)["GrantId"])
        except AwsError as exc:
            if exc.transient:
                raise  # the undo stays owed and is tried again
            return None

    def _revoke_all(self, key_arn: str, grant_ids: list[str]) -> None:
        """Revoke the grants; one already gone counts as revoked."""
        for grant_id in grant_ids:
            try:
                with aws_call("kms:RevokeGrant"):
                    self._kms.revoke_grant(KeyId=key_arn, GrantId=grant_id)
            except AwsError as exc:
                if not exc.gone:
                    raise

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
