"""`rmroute validate` is the whole check (issue 13): whatever a run would reject, overwrite or
silently misread is a ConfigError at validate time naming the file, the line and the key path.

Every test only validates (no pool is built, no model loaded); the pool config each test writes
has cheap RMs (length, lexical-overlap, verifier-math).
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

import rmroute.harness.core.config as config
from rmroute.harness.core.config import read_yaml_mapping
from rmroute.harness.runners import load_config
from rmroute.harness.core.errors import ConfigError
from tests.conftest import config_error

POOL = """\
name: tiny
reward_models: [length, lexical-overlap, {name: verifier-math, label: verifier}]
"""
RMS = ["length", "lexical-overlap", "verifier"]

#: a replay config that validates; tests change one thing in it
REPLAY = """\
kind: replay
suite: hardening
seeds: [0, 1]
routers:
  - random
  - {name: laser, params: {alpha: 0.1}}
featurizer: pair-encoder
settings:
  pool: POOL
  scenarios:
    iid: {}
"""


def write(tmp_path, text: str, name: str = "cfg.yaml"):
    """Write ``text`` (dedented) as ``name``; ``POOL`` in it becomes the path of :data:`POOL` written next to it."""
    pool = tmp_path / "pool.yaml"
    pool.write_text(POOL)
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("POOL", str(pool)))
    return path


def error_of(tmp_path, text: str) -> str:
    return config_error(write(tmp_path, text))


def test_the_base_config_validates(tmp_path):
    cfg = load_config(write(tmp_path, REPLAY))
    assert cfg.seeds == [0, 1] and [r.name for r in cfg.routers] == ["random", "laser"]


# ---- YAML loading: duplicate keys, bounds, encoding --------------------------------------------
def test_duplicate_keys_name_both_lines(tmp_path):
    msg = error_of(tmp_path, REPLAY + "seeds: [5]\n")  # top level: last one used to win silently
    assert "cfg.yaml:12: duplicate key 'seeds' (first at line 3, again at line 12)" in msg
    nested = REPLAY.replace("    iid: {}", "    iid: {}\n    iid: {order: domain_blocks}")
    assert "cfg.yaml:12: duplicate key 'iid' (first at line 11, again at line 12)" in error_of(tmp_path, nested)


def test_alias_bomb_fails_fast(tmp_path):
    # 9 levels of 9 aliases each: 9^9 ≈ 387 million strings once expanded (validate used to hang at 2.8 GB)
    levels = "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    bomb = REPLAY + "data:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels
    t0 = time.perf_counter()
    msg = error_of(tmp_path, bomb)
    assert time.perf_counter() - t0 < 10
    assert "aliases expand to more than" in msg
    # a few aliases are fine
    cfg = load_config(write(tmp_path, REPLAY + "data:\n  a: &x {n: 1}\n  b: *x\n"), check_run=False)  # replay refuses data; the YAML is the point
    assert cfg.data == {"a": {"n": 1}, "b": {"n": 1}}


def test_recursive_alias_is_refused(tmp_path):
    assert "recursive alias" in error_of(tmp_path, REPLAY + "data: &d {self: *d}\n")


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path):
    msg = error_of(tmp_path, REPLAY + "data: {x: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert f"nested more than {config.MAX_DEPTH} levels deep" in msg and "cfg.yaml:12:" in msg
    ok = REPLAY + "data: {x: " + "[" * (config.MAX_DEPTH - 3) + "]" * (config.MAX_DEPTH - 3) + "}\n"
    load_config(write(tmp_path, ok), check_run=False)  # replay refuses data; the YAML is the point


def test_non_utf8_names_the_file_and_line(tmp_path):
    path = write(tmp_path, REPLAY)
    path.write_bytes(path.read_bytes() + "description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:12: not UTF-8" in str(err.value)


def test_oversized_file_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, REPLAY + "description: " + "x" * (2 << 20) + "\n")  # 2 MiB
    with pytest.raises(ConfigError, match="at most 1 MiB"):
        read_yaml_mapping(path)


# ---- seeds ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, expect", [
    ("[true]", "seeds[0]: Input should be a valid integer"),   # ran as seed 1
    ("[0, '1']", "seeds[1]: Input should be a valid integer"),
    ("[-1]", "seeds[0]: Input should be greater than or equal to 0"),
    ("[0, 3, 0]", "seed(s) [0] listed more than once"),        # two runs, one file
])
def test_seeds_are_distinct_non_negative_integers(tmp_path, seeds, expect):
    msg = error_of(tmp_path, REPLAY.replace("seeds: [0, 1]", f"seeds: {seeds}"))
    assert "cfg.yaml:3:" in msg and expect in msg


def test_booleans_are_not_integers_in_settings_or_router_params(tmp_path):
    msg = error_of(tmp_path, REPLAY + "  batch_size: true\n")
    assert "settings.batch_size: Input should be a valid integer" in msg
    msg = error_of(tmp_path, REPLAY.replace("{alpha: 0.1}", "{alpha: true}"))
    assert "cfg.yaml:6: routers[1].params: LaserRouter: alpha must be a finite number >= 0, got True" in msg
    msg = error_of(tmp_path, REPLAY.replace("  - random", "  - {name: single, params: {arm: true}}"))
    assert "routers[0].params: single: arm must be in [0, 3) (an RM index" in msg


# ---- names that become parts of paths -----------------------------------------------------------
@pytest.mark.parametrize("name, expect", [
    ('"../../x/PWNED"', "must not contain '/'"),
    ('".hidden"', "must not start with '.'"),
    ('"a\\\\b"', "must not contain '/' or '\\'"),
    ('"nul\\0byte"', "must not contain NUL"),
    ('"' + "s" * 101 + '"', "is 101 characters long; at most 100"),
    ('""', "must not be empty"),
])
def test_scenario_names_are_checked(tmp_path, name, expect):
    msg = error_of(tmp_path, REPLAY.replace("    iid: {}", f"    {name}: {{}}"))
    assert "cfg.yaml:11: settings.scenarios." in msg and expect in msg


@pytest.mark.parametrize("suite, expect", [
    ('"nul\\0"', "must not contain NUL"),
    ("s" * 300, "is 300 characters long"),
    ('"with space"', "use only letters, digits"),
])
def test_suite_names_are_checked(tmp_path, suite, expect):
    msg = error_of(tmp_path, REPLAY.replace("suite: hardening", f"suite: {suite}"))
    assert "cfg.yaml:2: suite:" in msg and expect in msg


def test_router_labels_are_checked(tmp_path):
    msg = error_of(tmp_path, REPLAY.replace("{alpha: 0.1}", "{alpha: 0.1}, label: ../up"))
    assert "cfg.yaml:6: routers[1].label: a name must not contain '/'" in msg


def test_run_ids_must_fit_a_file_name(tmp_path):
    label = "é" * 100  # 100 characters, 200 bytes: the run id would pass 255 bytes with the scenario
    cfg = REPLAY.replace("{alpha: 0.1}", f"{{alpha: 0.1}}, label: {label}").replace("    iid: {}", "    " + "s" * 90 + ": {}")
    assert "routers[1]: the run id" in error_of(tmp_path, cfg)


# ---- one run key, one file ----------------------------------------------------------------------
def test_duplicate_labels_name_both_entries(tmp_path):
    cfg = REPLAY.replace("  - random", "  - laser")  # two `laser` entries without a label
    msg = error_of(tmp_path, cfg)
    assert "cfg.yaml:6: routers[1]: gives the label 'laser', which routers[0] (line 5) already gives" in msg


def test_labels_that_slug_alike_are_refused(tmp_path):
    cfg = REPLAY.replace("  - random", "  - {name: random, label: 'a:b'}").replace("{alpha: 0.1}", "{alpha: 0.1}, label: a_b")
    msg = error_of(tmp_path, cfg)
    assert "routers[1]: gives the label 'a_b', which routers[0] (line 5) already gives as 'a:b' (the same file name)" in msg


def test_single_arm_all_onto_an_existing_label(tmp_path):
    cfg = REPLAY.replace("  - random", "  - {name: single, params: {arm: lexical-overlap}}\n  - {name: single, params: {arm: all}}")
    msg = error_of(tmp_path, cfg)
    assert "cfg.yaml:6: routers[1]: gives the label 'single:lexical-overlap', which routers[0] (line 5)" in msg
    # the expansion uses the pool's RM names (labels included): one label per RM, all distinct
    cfg = REPLAY.replace("  - random", "  - {name: single, params: {arm: all}}")
    load_config(write(tmp_path, cfg))


def test_scenario_names_that_slug_alike_are_refused(tmp_path):
    msg = error_of(tmp_path, REPLAY.replace("    iid: {}", "    a b: {}\n    a_b: {}"))
    assert "settings.scenarios.a_b: scenario 'a_b' gives the same file names as scenario 'a b'" in msg


# ---- files a run needs --------------------------------------------------------------------------
def test_pool_must_be_set_and_load(tmp_path):
    msg = error_of(tmp_path, REPLAY.replace("  pool: POOL", "  pool: nowhere/pool.yaml"))
    assert (f"cfg.yaml:9: settings.pool: 'nowhere/pool.yaml' not found (tried {tmp_path / 'nowhere' / 'pool.yaml'}, "
            f"{Path.cwd() / 'nowhere' / 'pool.yaml'})") in msg
    msg = error_of(tmp_path, REPLAY.replace("  pool: POOL\n", ""))
    assert "settings.pool: missing" in msg


def test_offline_config_must_load_and_route_over_the_same_rms(tmp_path):
    other = tmp_path / "other-pool.yaml"
    other.write_text("name: other\nreward_models: [length, lexical-overlap]\n")
    (tmp_path / "offline.yaml").write_text(f"pool: {other}\n")
    cfg = REPLAY.replace("featurizer: pair-encoder\n", "").replace("  pool: POOL", f"  pool: POOL\n  offline: {tmp_path / 'offline.yaml'}")
    msg = error_of(tmp_path, cfg)
    assert "settings.offline: its pool" in msg and "['length', 'lexical-overlap']" in msg
    msg = error_of(tmp_path, cfg.replace(str(tmp_path / "offline.yaml"), "missing-offline.yaml"))
    assert f"settings.offline: 'missing-offline.yaml' not found (tried {tmp_path / 'missing-offline.yaml'}" in msg


def test_contexts_are_required(tmp_path):
    msg = error_of(tmp_path, REPLAY.replace("featurizer: pair-encoder\n", ""))
    assert "replay needs contexts" in msg


# ---- parameter values are checked by the factories themselves -----------------------------------
@pytest.mark.parametrize("params, expect", [
    ("{alpha: -5}", "LaserRouter: alpha must be a finite number >= 0, got -5"),
    ("{alpha: abc}", "LaserRouter: alpha must be a finite number >= 0, got 'abc'"),
    ("{mode: sideways}", "LaserRouter: mode must be one of per_batch, per_item, got 'sideways'"),
    ("{ridge: 0}", "LaserRouter: ridge must be a finite number > 0, got 0"),
])
def test_router_param_values(tmp_path, params, expect):
    msg = error_of(tmp_path, REPLAY.replace("{alpha: 0.1}", params))
    assert f"cfg.yaml:6: routers[1].params: {expect}" in msg


def test_other_router_values(tmp_path):
    bad = {
        "{name: bayesian-adaptive, params: {threshold: 1.5}}": "threshold must be a finite number >= 0 and <= 1",
        "{name: bayesian, params: {prior_mean: offline}}": "prior_mean: offline needs settings.offline",
        "{name: bayesian, params: {prior_scale: .nan}}": "prior_scale must be a finite number",
        "{name: single, params: {arm: verifier-math}}": "arm 'verifier-math' is not in the pool (length, lexical-overlap, verifier)",
        "{name: single, params: {arm: 3}}": "single: arm must be in [0, 3)",
        "{name: domain-best, params: {min_pairs: 0}}": "min_pairs must be an int >= 1",
    }
    for entry, expect in bad.items():
        msg = error_of(tmp_path, REPLAY.replace("  - random", f"  - {entry}"))
        assert "cfg.yaml:5: routers[0]" in msg and expect in msg, (entry, msg)


def test_normalizer_values(tmp_path):
    msg = error_of(tmp_path, REPLAY + "normalizers: [{name: quantile, params: {low: 90, high: 10}}]\n")
    assert "normalizers[0].params: quantile: low must be < high" in msg


@pytest.mark.parametrize("what", ["cold_start", "drift"])
def test_scenario_arms_are_rms_of_the_pool(tmp_path, what):
    msg = error_of(tmp_path, REPLAY.replace("    iid: {}", f"    odd: {{{what}: {{arm: minilm-chat}}}}"))
    assert f"cfg.yaml:11: settings.scenarios.odd.{what}.arm: 'minilm-chat' is not an RM of the pool" in msg
    load_config(write(tmp_path, REPLAY.replace("    iid: {}", f"    odd: {{{what}: {{arm: verifier}}}}")))


def test_empty_router_list_and_scenario_map(tmp_path):
    msg = error_of(tmp_path, REPLAY.replace("  - random\n  - {name: laser, params: {alpha: 0.1}}\n", "  []\n"))
    assert "routers: a replay config needs at least one router" in msg
    msg = error_of(tmp_path, REPLAY.replace("  scenarios:\n    iid: {}\n", "  scenarios: {}\n"))
    assert "settings.scenarios: Dictionary should have at least 1 item" in msg


def test_reward_models_are_not_loaded_at_validate(tmp_path):
    # a pool whose learned RM does not exist anywhere: validate reads its names, never the model
    (tmp_path / "hf-pool.yaml").write_text("name: hf\nreward_models: [length, {name: hf-seqcls, label: ghost, "
                                           "params: {model: /nonexistent/model}}]\n")
    cfg = load_config(write(tmp_path, REPLAY.replace("POOL", str(tmp_path / "hf-pool.yaml"))))
    assert cfg.settings["pool"].endswith("hf-pool.yaml")


# ---- train and evaluate configs -------------------------------------------------------------------
TRAIN = """\
kind: train
suite: hardening-train
routers: [ROUTERS]
featurizer: pair-encoder
settings:
  policy: {model: tiny}
  pool: POOL
"""


def test_train_checks(tmp_path):
    load_config(write(tmp_path, TRAIN.replace("ROUTERS", "random, laser")))
    msg = error_of(tmp_path, TRAIN.replace("ROUTERS", "oracle"))
    assert "cfg.yaml:3: routers: no router that can train" in msg
    msg = error_of(tmp_path, TRAIN.replace("ROUTERS", "laser, laser"))
    assert "routers[1]: gives the label 'laser', which routers[0]" in msg
    msg = error_of(tmp_path, TRAIN.replace("ROUTERS", "{name: laser, params: {alpha: -1}}"))
    assert "routers[0].params: LaserRouter: alpha must be" in msg
    msg = error_of(tmp_path, TRAIN.replace("ROUTERS", "random") + "  iterations: true\n")
    assert "settings.iterations: Input should be a valid integer" in msg
    # a train config's own reward models are built for their names, which loads no model
    own = TRAIN.replace("ROUTERS", "{name: single, params: {arm: all}}").replace("  pool: POOL\n", "")
    own += "reward_models: [length, {name: hf-seqcls, params: {model: /nonexistent/ghost-rm}}]\n"
    load_config(write(tmp_path, own))
    msg = error_of(tmp_path, own.replace("{arm: all}", "{arm: nope}"))
    assert "arm 'nope' is not in the pool (length, ghost-rm)" in msg


EVALUATE = """\
kind: evaluate
suite: hardening-eval
settings:
  policies: [{label: base, policy: {model: tiny}}]
  suites: [SUITES]
"""


def test_evaluate_checks(tmp_path):
    load_config(write(tmp_path, EVALUATE.replace("SUITES", "gsm8k")))
    msg = error_of(tmp_path, EVALUATE.replace("SUITES", "gsm8kk"))
    assert "settings.suites[0].name: unknown suite 'gsm8kk'" in msg
    msg = error_of(tmp_path, EVALUATE.replace("SUITES", "{name: gsm8k, label: 'a b'}, {name: mmlu, label: a_b}"))
    assert "settings.suites[1]: 'a_b' gives the same file names as settings.suites[0] ('a b')" in msg
    msg = error_of(tmp_path, EVALUATE.replace("label: base", "label: ../base").replace("SUITES", "gsm8k"))
    assert "settings.policies[0].label: a name must not contain '/'" in msg
