"""Config validation: every error names the file, line and key path; canonical hashing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rmroute.harness.core.config import config_sha256
from rmroute.harness.runners import config_paths, load_config
from rmroute.harness.core.errors import ConfigError
from tests.conftest import REPO, config_error

GOOD = """\
kind: replay
suite: demo
seeds: [0, 1]
routers:
  - random
  - name: single
    params: {arm: 1}
reward_models: [length]
featurizer: pair-encoder
settings:
  pool: POOL
"""
#: the pool GOOD's `POOL` stands for (validate loads it for the RM names; nothing is built)
POOL = "name: p\nreward_models: [length, lexical-overlap, verifier-math]\n"


def write(tmp_path, text, name="cfg.yaml"):
    """Write ``text`` as ``name``; ``POOL`` in it becomes the path of a pool config written next to it."""
    (tmp_path / "pool.yaml").write_text(POOL)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("POOL", str(tmp_path / "pool.yaml")))
    return path


def error_of(tmp_path, text) -> str:
    return config_error(write(tmp_path, text))


def test_good_config_loads(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert [r.name for r in cfg.routers] == ["random", "single"]
    assert cfg.routers[1].params == {"arm": 1}
    assert cfg.seeds == [0, 1]


def test_shipped_configs_validate():
    import importlib

    # configs are named by what reads them (docs/configs.md); everything else is a run config
    loaders = {"serve-rm": "rmroute.harness.serve:load_serve_config", "offline-": "rmroute.harness.pipelines.offline:load_offline_config",
               "pool-": "rmroute.harness.pipelines.pool:load_pool_config", "rm-train-": "rmroute.harness.pipelines.rm_train:load_train_config"}
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    assert paths
    for path in paths:
        target = next((t for prefix, t in loaders.items() if path.name.startswith(prefix)), None)
        if target is None:
            for member in config_paths(path):  # a `kind: group` file stands for its members
                load_config(member)
        else:
            module, func = target.split(":")
            getattr(importlib.import_module(module), func)(path)


def test_unknown_top_level_key(tmp_path):
    msg = error_of(tmp_path, GOOD + "sedes: [3]\n")
    assert "cfg.yaml:12: sedes: unknown key 'sedes'" in msg
    assert "allowed keys:" in msg and "seeds" in msg


def test_unknown_nested_key_has_full_path_and_line(tmp_path):
    bad = GOOD.replace("    params: {arm: 1}", "    params: {arm: 1}\n    lable: x")
    msg = error_of(tmp_path, bad)
    assert "cfg.yaml:8: routers[1].lable: unknown key 'lable'" in msg
    assert "label" in msg


def test_wrong_type_shows_value(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: [0, many]"))
    assert "cfg.yaml:3: seeds[1]:" in msg and "'many'" in msg


def test_bad_enum_lists_allowed(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("kind: replay", "kind: replya"))
    assert "cfg.yaml:1: kind:" in msg and "'replay'" in msg and "'train'" in msg and "'replya'" in msg


def test_missing_key(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("suite: demo\n", ""))
    assert "suite: Field required" in msg


def test_unknown_plugin_name_suggests(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("  - random", "  - randon"))
    assert "cfg.yaml:5: routers[0].name: unknown router 'randon'; did you mean 'random'?" in msg


def test_unknown_plugin_param(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("{arm: 1}", "{armm: 1}"))
    assert "cfg.yaml:7: routers[1].params:" in msg and "armm" in msg and "accepted parameters" in msg


def test_runner_supplied_params_are_refused(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("{arm: 1}", "{arm: 1, n_arms: 4}"))
    assert "routers[1].params: n_arms are set by the runner" in msg


def test_invalid_yaml_names_line(tmp_path):
    msg = error_of(tmp_path, GOOD + "description: [unclosed\n")
    assert "cfg.yaml:" in msg and "not valid YAML" in msg


def test_not_a_mapping_and_missing_file(tmp_path):
    assert "must be a mapping" in error_of(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_hash_is_canonical(tmp_path):
    a = load_config(write(tmp_path, GOOD, "a.yaml"))
    reordered = textwrap.dedent("""\
        reward_models: [{name: length}]
        routers:
          - {name: random, params: {}}
          - {params: {arm: 1}, name: single}
        seeds: [0, 1]
        suite: demo
        kind: replay
        description: ""
        settings: {pool: POOL}
        featurizer: {name: pair-encoder}
        """)
    b = load_config(write(tmp_path, reordered, "b.yaml"))
    c = load_config(write(tmp_path, GOOD.replace("{arm: 1}", "{arm: 2}"), "c.yaml"))
    assert config_sha256(a) == config_sha256(b)
    assert config_sha256(a) != config_sha256(c)
    assert len(config_sha256(a)) == 64


def test_settings_are_validated_once_per_config(tmp_path, monkeypatch):
    """load_config validates a config's settings; the runner's check_config, plan and run read them
    through settings_of without validating again, unless the settings changed."""
    from rmroute.harness.runners import get_plan, settings_of
    from rmroute.harness.runners.replay import ReplaySettings

    validated = []
    original = ReplaySettings.model_validate.__func__

    def counting(cls, obj, *args, **kwargs):
        validated.append(dict(obj))
        return original(cls, obj, *args, **kwargs)

    monkeypatch.setattr(ReplaySettings, "model_validate", classmethod(counting))
    path = write(tmp_path, GOOD)
    cfg = load_config(path)  # the settings model, then replay.check_config
    sha = config_sha256(cfg)
    assert "× 2 seed(s)" in get_plan("replay")(cfg, path)
    settings = settings_of(cfg)
    assert isinstance(settings, ReplaySettings) and settings.batch_size == 32
    assert len(validated) == 1
    assert config_sha256(cfg) == sha and "batch_size" not in cfg.settings  # the config is left as it is

    cfg.settings["batch_size"] = 8  # changed settings are validated again
    assert settings_of(cfg).batch_size == 8 and len(validated) == 2
    assert settings_of(cfg) is settings_of(cfg) and len(validated) == 2
    other = cfg.model_copy(deep=True)  # another config object: validated on first use
    assert settings_of(other).batch_size == 8 and len(validated) == 3
    cfg.settings["batch_size"] = 0
    with pytest.raises(ValueError, match="batch_size"):
        settings_of(cfg)


def test_cli_validate_one_line_error_without_traceback(tmp_path):
    path = write(tmp_path, GOOD.replace("  - random", "  - randon"))
    out = subprocess.run([sys.executable, "-m", "rmroute.harness.cli", "validate", str(path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "routers[0].name" in out.stderr
    out = subprocess.run([sys.executable, "-m", "rmroute.harness.cli", "--debug", "validate", str(path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_runner_settings_are_checked_with_file_line_and_key(tmp_path):
    msg = error_of(tmp_path, GOOD + "  batch_sise: 8\n")
    assert "cfg.yaml:12: settings.batch_sise: unknown key 'batch_sise'" in msg and "batch_size" in msg
    msg = error_of(tmp_path, GOOD + "  scenarios:\n    iid: {order: random}\n")
    assert "cfg.yaml:13: settings.scenarios.iid.order:" in msg and "'random'" in msg and "'domain_blocks'" in msg
