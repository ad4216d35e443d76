"""Shared fixtures. Tests never touch the network and use one torch thread."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import rmroute.harness  # noqa: F401  - pins one CPU code path (harness.determinism) before numpy or torch loads

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
FIXTURE_PLUGINS = Path(__file__).resolve().parent / "plugins"


def make_distribution(root: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """Write a minimal installed distribution (a .dist-info folder) declaring ``rmroute`` entry points.

    importlib.metadata finds it on sys.path exactly as it finds a pip-installed package.
    """
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = ["[rmroute]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def fixture_site(tmp_path, monkeypatch):
    """A site folder with the fixture plugins installed as entry points, put on sys.path."""
    site = make_distribution(
        tmp_path / "site", "rmroute-fixture-plugins",
        {
            "fixture-good": "fixture_good",
            "fixture-broken-import": "fixture_broken_import",
            "fixture-raising-hook": "fixture_raising_hook",
        },
    )
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    monkeypatch.syspath_prepend(str(site))
    for mod in ("fixture_good", "fixture_broken_import", "fixture_raising_hook", "fixture_duplicate"):
        sys.modules.pop(mod, None)
    monkeypatch.delenv("RMROUTE_PLUGINS", raising=False)
    monkeypatch.delenv("RMROUTE_DISABLE_PLUGINS", raising=False)
    return site


@pytest.fixture(autouse=True)
def _fresh_registry():
    from rmroute.harness.core.plugins import reset_registry

    reset_registry()
    yield
    reset_registry()


def config_error(path: Path) -> str:
    """The message of the ConfigError that loading the run config at ``path`` raises (it must name the file)."""
    from rmroute.harness.runners import load_config
    from rmroute.harness.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    return msg
