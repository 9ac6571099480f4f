"""`accessbot demo` end to end, as a user runs it: a subprocess with no AWS or Slack settings at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.demo import demo

AWS_LINES = {
    "iam_group": "[AWS] IAM group deploy-admins — members:",
    "iam_role": "[AWS] IAM user alice — inline policies:",
    "kms_key": "[AWS] KMS key alias/payments — grants:",
    "sso_permission_set": "[AWS] Identity Center permission set ProdAdmin — assignments:",
}


def run_demo(cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    # No AWS, Slack, database or proxy settings from the developer's environment: the demo needs none.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "ACCESSBOT_", "DATABASE_"))}
    env |= {"HOME": str(cwd), "PYTHONIOENCODING": "utf-8"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=90
    )
    return done, time.monotonic() - started


def test_demo_tells_the_whole_story_offline_in_under_a_minute(tmp_path: Path) -> None:
    done, took = run_demo(tmp_path)
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{out}\nstderr:\n{done.stderr}"
    assert took < 60, f"the demo took {took:.1f}s"

    assert re.search(r"#access-approvals · accessbot\n(    │ .*\n)*    │ \[Approve\]  \[Deny\]\n", out), out
    assert "Access request #1" in out and "Waiting for approval: 0 of 1." in out
    assert "You cannot approve or deny your own request #1." in out
    # Private answers through a command's or a click's response_url say where they are and who sees them.
    assert "#general · accessbot · only @alice can see this" in out
    assert "┌ # ·" not in out and "only @ can see this" not in out, out
    assert "Denied by @carol" in out and "was denied by @carol" in out
    assert "Approved by @bob" in out and "Approved by @carol" in out

    for kind, prefix in AWS_LINES.items():
        states = [line.split(prefix, 1)[1].strip() for line in out.splitlines() if prefix in line]
        assert states[0] == "(none)", (kind, states)  # before anyone asks
        assert states[1] != "(none)" and "alice" in states[1] + out, (kind, states)  # granted
        assert states[-1] == "(none)", (kind, states)  # taken away at expiry
    assert '"aws:CurrentTime"' in out and "accessbot-" in out
    assert out.count("has ended (expired)") == 6  # the four kinds, the member role and the on-call grant
    # The role in the second account: nothing on it while granted, the session deny written there at the end.
    member = [line for line in out.splitlines() if "[AWS] account 222222222222, role deploy" in line]
    assert [line.rsplit(": ", 1)[1] for line in member] == ["(none)", "(none)", "accessbot-ended-sessions"], member
    assert '"Sid": "AccessbotEnd' in out and '"aws:SourceIdentity": "alice"' in out
    # The Identity Center session cut: ProdAdmin's inline policy before, during and after the end (issue 21).
    heads = [i for i, line in enumerate(out.splitlines()) if "[AWS] ProdAdmin's inline policy" in line]
    assert [out.splitlines()[i].rsplit(": ", 1)[1] for i in heads] == ["(none)", "1", "(none)"], heads
    during = out.splitlines()[heads[1] + 1 : heads[1] + 3]
    assert '"Sid": "NoBilling"' in during[0] and '"identitystore:userId"' in during[1], during  # the admin's kept
    assert '"aws:TokenIssueTime"' in during[1] and '"aws:PrincipalAccount"' in during[1], during
    assert out.splitlines()[heads[2] + 1] == out.splitlines()[heads[0] + 1]  # lifted: the set as it was
    assert "Activity of #1: 5 calls, 2 writes, 1 AccessDenied" in out and "cloudformation:UpdateStack" in out
    # On call in (fake) PagerDuty: approved at once; then the schedule cannot be read: to people, saying why.
    assert "Approved: on call for payments-primary." in out
    assert "On-call could not be checked (payments-primary: PagerDuty answered HTTP 500)" in out
    assert list(tmp_path.iterdir()) == [], "the demo left files behind in the working directory"


def test_without_moto_the_demo_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)  # makes `import moto.server` raise ImportError
    assert demo(Settings()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install" in err and "[demo]" in err
