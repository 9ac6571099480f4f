"""One granter per kind of access, all behind the Granter protocol; they return plain values."""

from bot.aws.granters.base import PREFIX, Ended, Granter, GrantSpec, account_of, is_alias, iso, role_name
from bot.aws.granters.group import GroupGranter
from bot.aws.granters.key import KEY_STATES, KeyGranter
from bot.aws.granters.role import RoleGranter, managed_deny_arn, role_policy
from bot.aws.granters.role_denies import session_deny
from bot.aws.granters.sso import PermissionSetGranter, Polling, SsoGroupGranter

__all__ = [
    "KEY_STATES",
    "PREFIX",
    "Ended",
    "GrantSpec",
    "Granter",
    "GroupGranter",
    "KeyGranter",
    "PermissionSetGranter",
    "Polling",
    "RoleGranter",
    "SsoGroupGranter",
    "account_of",
    "is_alias",
    "iso",
    "managed_deny_arn",
    "role_name",
    "role_policy",
    "session_deny",
]
