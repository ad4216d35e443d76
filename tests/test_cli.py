"""The command line: lazy imports, one-line errors, run dispatch, leaderboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rmroute.harness import runners
from rmroute.harness.cli import main
from rmroute.harness.core.errors import NotBuiltError
from tests.conftest import FIXTURE_PLUGINS, REPO


def test_help_does_not_import_torch():
    probe = textwrap.dedent("""
        import sys
        from rmroute.harness.cli import main
        rc = main(["--help"])
        rc2 = main(["plugins", "--json"])
        heavy = sorted(m for m in ("torch", "transformers", "trl", "datasets") if m in sys.modules)
        print("RC", rc, rc2, "HEAVY", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "RC 0 0 HEAVY []" in out.stdout


def test_console_script_help():
    exe = os.path.join(os.path.dirname(sys.executable), "rmroute")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for cmd in ("plugins", "validate", "run", "leaderboard"):
        assert cmd in out.stdout


def test_missing_runner_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(runners.RUNNERS, "replay", "rmroute.harness.no_such_runner")
    with pytest.raises(NotBuiltError, match="'replay' runner .* is not built yet"):
        runners.get_runner("replay")


def test_run_dispatches_and_writes_results(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    monkeypatch.setitem(runners.RUNNERS, "replay", "fixture_runner")
    cfg = tmp_path / "run.yaml"
    cfg.write_text("kind: replay\nsuite: clidemo\nseeds: [0, 1]\nrouters: [random]\nreward_models: [length]\n")
    out = tmp_path / "results"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    files = sorted((out / "runs" / "clidemo").glob("*.json"))
    assert len(files) == 2
    assert {json.loads(f.read_text())["seed"] for f in files} == {0, 1}
    assert main(["leaderboard", str(out)]) == 0
    assert "clidemo" in (out / "LEADERBOARD.md").read_text()  # the front page links the track page
    (page,) = (out / "board").glob("clidemo-*.md")
    assert "| random | 2 | 0.55 ± 0.071 |" in page.read_text()


def test_errors_exit_nonzero_with_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no such config file" in err and "\n" not in err
    assert main(["no-such-command"]) == 2
