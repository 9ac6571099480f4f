"""KMS as AWS documents it, in front of moto: CreateGrant's Name makes a retry idempotent; ListGrants lags.

moto creates a new grant for every CreateGrant and lists every change at once. AWS does neither:
- KMS API Reference, CreateGrant, `Name`: "When this value is present, you can retry a CreateGrant request
  with identical parameters; if the grant already exists, the original GrantId is returned without creating
  a new grant. Note that the returned grant token is unique with every CreateGrant request, even when a
  duplicate GrantId is returned." (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateGrant.html)
- KMS Developer Guide, "Grants in AWS KMS", "Eventual consistency": a grant that is created, retired or
  revoked may take up to about five minutes to be seen throughout KMS
  (https://docs.aws.amazon.com/kms/latest/developerguide/grants.html#terms-eventual-consistency); here
  ListGrants shows a new grant only `list_lag` seconds after it was made, and a revoked one for that long.

Point a client at `KmsModel.url` with AWS_ENDPOINT_URL_KMS; other services' requests go to moto unchanged
(and through ChaosProxy's rules). ChaosProxy rules on CreateGrant answer after the model: "applied_then_error"
makes (or finds) the grant and then answers the error; "error" answers it without making anything.
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.support.chaos_proxy import ChaosProxy, _Handler, error_answer, identify

JSON_HEADERS = [("Content-Type", "application/x-amz-json-1.1")]
# A grant's identity for the retry rule: every CreateGrant parameter but the grant tokens (which only prove
# access to the call, they are not part of the grant).
IDENTITY = ("KeyId", "GranteePrincipal", "RetiringPrincipal", "Operations", "Constraints", "Name")


class KmsModel(ChaosProxy):
    """A ChaosProxy whose KMS answers follow AWS's documented grant semantics (see the module docstring)."""

    def __init__(self, upstream: str, *, list_lag: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(upstream)
        self.list_lag = list_lag
        self._clock = clock
        self._model_lock = threading.Lock()
        self._named: dict[str, str] = {}  # the identity of a named CreateGrant -> the GrantId it made
        self._made_at: dict[str, float] = {}  # GrantId -> when the model made it
        self._revoked: dict[str, tuple[dict[str, Any], float]] = {}  # GrantId -> its listing, when revoked
        self.grants_made = 0  # grants moto really created through the model

    def settle(self) -> None:
        """Let ListGrants see every change made so far (the end of the eventual-consistency window)."""
        with self._model_lock:
            self._made_at.clear()
            self._revoked.clear()

    # -- serving -------------------------------------------------------------------------------

    def _serve(self, handler: _Handler, body: bytes) -> None:
        service, operation = identify(dict(handler.headers.items()), body, handler.path)
        if service != "kms" or operation not in ("CreateGrant", "ListGrants", "RevokeGrant"):
            super()._serve(handler, body)
            return
        at = time.monotonic()
        rule = self._decide(service, operation) if operation == "CreateGrant" else None
        mode = rule.mode if rule is not None else "pass"
        if mode not in ("pass", "error", "applied_then_error"):
            raise ValueError(f"the KMS model answers CreateGrant in pass, error or applied_then_error, not {mode}")
        request = json.loads(body or b"{}")
        headers: list[tuple[str, str]] = []
        if mode == "error":
            status, data = 0, b""
        elif operation == "CreateGrant":
            status, headers, data = self._create_grant(handler, body, request)
        elif operation == "RevokeGrant":
            status, headers, data = self._revoke_grant(handler, body, request)
        else:
            status, headers, data = self._list_grants(handler, body, request)
        if mode != "pass":
            assert rule is not None
            status, error_headers, data = error_answer(
                True, service, mode, code=rule.code, status=rule.status, request_id=self._next_request_id()
            )
            headers = list(error_headers.items())
        self._record(service, operation, mode, status, at)
        handler.send(status, headers, data)

    def _create_grant(self, handler: _Handler, body: bytes, request: dict[str, Any]) -> tuple[int, Any, bytes]:
        identity = json.dumps({k: request.get(k) for k in IDENTITY}, sort_keys=True)
        with self._model_lock:
            earlier = self._named.get(identity) if request.get("Name") else None
        if earlier is not None and self._exists(handler, request["KeyId"], earlier):
            answer = {"GrantId": earlier, "GrantToken": secrets.token_hex(32)}  # a new token every time (see above)
            return 200, JSON_HEADERS, json.dumps(answer).encode()
        status, headers, data = self._forward_or_502(handler, body)
        if status == 200:
            grant_id = str(json.loads(data)["GrantId"])
            with self._model_lock:
                self.grants_made += 1
                self._made_at[grant_id] = self._clock()
                if request.get("Name"):
                    self._named[identity] = grant_id
        return status, headers, data

    def _revoke_grant(self, handler: _Handler, body: bytes, request: dict[str, Any]) -> tuple[int, Any, bytes]:
        listed = [g for g in self._moto_grants(handler, request["KeyId"]) if g["GrantId"] == request.get("GrantId")]
        status, headers, data = self._forward_or_502(handler, body)
        if status == 200 and listed:
            with self._model_lock:
                self._revoked[listed[0]["GrantId"]] = (listed[0], self._clock())
        return status, headers, data

    def _list_grants(self, handler: _Handler, body: bytes, request: dict[str, Any]) -> tuple[int, Any, bytes]:
        status, headers, data = self._forward_or_502(handler, body)
        if status != 200:
            return status, headers, data
        answer = json.loads(data)
        now = self._clock()
        with self._model_lock:
            hidden = {g for g, made in self._made_at.items() if now - made < self.list_lag}
            lingering = [
                grant
                for grant, revoked in self._revoked.values()
                if now - revoked < self.list_lag and _same_key(grant.get("KeyId", ""), request.get("KeyId", ""))
            ]
        grantee = request.get("GranteePrincipal")
        lingering = [g for g in lingering if grantee in (None, g.get("GranteePrincipal"))]
        answer["Grants"] = [g for g in answer.get("Grants", []) if g["GrantId"] not in hidden] + lingering
        return 200, JSON_HEADERS, json.dumps(answer).encode()

    # -- moto, asked directly ------------------------------------------------------------------

    def _exists(self, handler: _Handler, key_id: str, grant_id: str) -> bool:
        """Whether moto (which is consistent at once) still has the grant."""
        return any(g["GrantId"] == grant_id for g in self._moto_grants(handler, key_id))

    def _moto_grants(self, handler: _Handler, key_id: str) -> list[dict[str, Any]]:
        """Every grant on the key, as moto has it now (the caller's credential scope names the region)."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            headers = {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "TrentService.ListGrants",
                "Authorization": handler.headers.get("Authorization", ""),
                "Host": self._netloc,
            }
            connection.request("POST", self._base_path + "/", json.dumps({"KeyId": key_id}).encode(), headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        return list(json.loads(data).get("Grants", [])) if response.status == 200 else []


def _same_key(listed: str, asked: str) -> bool:
    """Whether a grant's KeyId (an ARN) is the key a ListGrants asked about (an ARN or a key ID)."""
    return listed == asked or listed.rsplit("/", 1)[-1] == asked.rsplit("/", 1)[-1]
