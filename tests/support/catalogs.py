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
