"""IAM Identity Center: a permission set in several accounts (account assignments), an Identity Store group.

For these kinds the spec's `iam_user` is the Identity Store UserName and `iam_user_arn` its UserId. At every
end the person's open sessions are cut by a deny in the permission set's inline policy (deny.py), written
and provisioned before the access goes (sessions.py).
"""

from bot.aws.granters.sso.assignments import CreationLog, MemoryCreations
from bot.aws.granters.sso.deny import SID_PREFIX, Deny
from bot.aws.granters.sso.group import SsoGroupGranter
from bot.aws.granters.sso.permission_set import PermissionSetGranter
from bot.aws.granters.sso.permission_sets import session_duration
from bot.aws.granters.sso.polling import Polling

__all__ = [
    "SID_PREFIX",
    "CreationLog",
    "Deny",
    "MemoryCreations",
    "PermissionSetGranter",
    "Polling",
    "SsoGroupGranter",
    "session_duration",
]
