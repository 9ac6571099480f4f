"""The shipped example catalog loads, and the README documents every catalog key."""

from __future__ import annotations

from pathlib import Path

from bot.catalog import Settings, load_catalog

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_catalog_is_valid() -> None:
    catalog = load_catalog(ROOT / "catalog.example.yaml")
    assert {"deploy-admins", "prod-readonly", "payments-key"} <= set(catalog.resources)
    assert {r.kind.value for r in catalog.resources.values()} == {
        "iam_group",
        "iam_role",
        "kms_key",
        "sso_permission_set",
        "sso_group",
    }


def test_the_readme_documents_every_catalog_key() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [key for key in Settings.model_fields if f"`{key}`" not in readme]
    assert missing == []


def test_the_readmes_first_paragraph_names_every_kind_of_access() -> None:
    first = (ROOT / "README.md").read_text().split("\n\n")[1]
    for kind in ("iam_group", "iam_role", "kms_key", "sso_permission_set", "sso_group", "iam_policy"):
        assert f"`{kind}`" in first, kind
