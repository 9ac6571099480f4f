"""Catalog files the tests run against."""

BASIC = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
  warn_before: 10m
identity:
  strategy: email_tag
  tag_key: email
  static:
    U0DAVE: dave
approver_groups:
  platform: [U0BOB, U0CAROL]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    description: Deploy to production
    approvers: [platform]
  auditors:
    kind: iam_group
    group_name: auditors
    approvers: [platform]
    allow_self_approval: true
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    max_duration: 4h
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt, GenerateDataKey]
    approvers: [U0DAVE, U0ERIN]
    approvals_required: 2
  ghost-group:
    kind: iam_group
    group_name: does-not-exist
    approvers: [platform]
"""

EMAILS = {
    "U0ALICE": "alice@example.com",
    "U0BOB": "bob@example.com",
    "U0CAROL": "carol@example.com",
    "U0ERIN": "erin@example.com",
    "U0MALLORY": "mallory@example.com",
}

WORKFLOW = """
defaults:
  approval_channel: C0APPROVALS
  min_duration: 1s
  default_duration: 1h
  max_duration: 8h
  warn_before: 10m
identity:
  strategy: email_tag
approver_groups:
  platform: [U0BOB, U0CAROL]
  oncall: [S0ONCALL]
resources:
  deploy-admins:
    kind: iam_group
    group_name: deploy-admins
    approvers: [platform]
    max_extensions: 1
  prod-readonly:
    kind: iam_role
    role_arn: arn:aws:iam::123456789012:role/prod-readonly
    approvers: [platform]
    require_mfa: false
    warn_before: 2s
  payments-key:
    kind: kms_key
    key_id: alias/payments
    operations: [Decrypt, GenerateDataKey]
    approvers: [U0DAVE, U0ERIN]
    approvals_required: 2
  auditors:
    kind: iam_group
    group_name: auditors
    approvers: [oncall]
    requesters: [U0ALICE]
    auto_approve: {max_duration: 30m}
    auto_approve_limit: 1
    break_glass: true
    pending_timeout: 3s
    remind_after: 1s
    max_reminders: 2
    escalate_to: [U0FRANK]
    escalate_after: 1s
"""
