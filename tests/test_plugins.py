"""Plugin discovery: entry points, built-ins, failures, allow/deny lists, duplicates, create()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from rmroute import hookimpl
from rmroute.harness.core.errors import PluginError, UnknownPluginError
from rmroute.harness.core.plugins import PluginWarning, build_registry, create, get_registry, reset_registry
from tests.conftest import FIXTURE_PLUGINS, REPO


def quiet_build(**kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = build_registry(**kw)
    return reg, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_builtins_register_through_the_hooks():
    reg, _ = quiet_build()
    assert {"single", "random"} <= set(reg.names("router"))
    assert "length" in reg.names("reward_model")
    sources = {p.name: p.source for p in reg.plugins}
    assert sources["builtin-routers"] == "builtin"
    assert reg.get("router", "random").plugin == "builtin-routers"


def test_entry_point_discovery(fixture_site):
    reg, warned = quiet_build()
    entry = reg.get("router", "fixture-first-arm")
    assert entry.plugin == "fixture-good"
    assert entry.metadata["description"] == "always arm 0 (fixture)"
    assert reg.get("reward_model", "fixture-constant").plugin == "fixture-good"
    info = {p.name: p for p in reg.plugins}["fixture-good"]
    assert (info.source, info.distribution, info.version) == ("entry-point", "rmroute-fixture-plugins", "0.1.0")


def test_broken_plugins_are_skipped_and_reported(fixture_site):
    reg, warned = quiet_build()
    failed = {f.name: f for f in reg.failed}
    assert failed["fixture-broken-import"].stage == "import"
    assert "deliberately broken" in failed["fixture-broken-import"].error
    assert failed["fixture-raising-hook"].stage == "register_routers"
    assert "exploded on purpose" in failed["fixture-raising-hook"].error
    # a plugin that raised keeps none of its entries, even the one it registered before raising
    assert "fixture-half-registered" not in reg.names("router")
    # everything else still works
    assert {"random", "single", "fixture-first-arm"} <= set(reg.names("router"))
    assert any("fixture-broken-import" in w and "deliberately broken" in w for w in warned)
    assert any("fixture-raising-hook" in w for w in warned)


def test_allow_list(fixture_site, monkeypatch):
    monkeypatch.setenv("RMROUTE_PLUGINS", "fixture-good")
    reg, _ = quiet_build()
    assert "fixture-first-arm" in reg.names("router")
    assert reg.failed == []  # the broken ones were never imported
    assert "random" in reg.names("router")  # built-ins are not subject to the allow-list


def test_deny_list(fixture_site, monkeypatch):
    monkeypatch.setenv("RMROUTE_DISABLE_PLUGINS", "fixture-good, fixture-broken-import,builtin-routers")
    reg, _ = quiet_build()
    assert "fixture-first-arm" not in reg.names("router")
    assert "random" not in reg.names("router")
    assert [f.name for f in reg.failed] == ["fixture-raising-hook"]


def test_duplicate_names_name_both_plugins(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    import fixture_duplicate

    with pytest.raises(PluginError) as err:
        build_registry(extra_plugins=[("dup-plugin", fixture_duplicate)])
    msg = str(err.value)
    assert "'random'" in msg and "builtin-routers" in msg and "dup-plugin" in msg


def test_create_and_unknown_names():
    router = create("router", "single", n_arms=3, dim=2, seed=0, arm=2)
    assert router.arm == 2
    with pytest.raises(UnknownPluginError) as err:
        create("router", "randm", n_arms=3, dim=2)
    assert "did you mean 'random'" in str(err.value)
    with pytest.raises(UnknownPluginError, match="unknown plugin kind 'routr'"):
        create("routr", "random")
    with pytest.raises(PluginError) as err:
        create("router", "single", n_arms=3, dim=2, armm=1)
    assert "armm" in str(err.value) and "accepted parameters: n_arms, dim, seed, arm" in str(err.value)


def test_registry_is_built_once():
    assert get_registry() is get_registry()
    first = get_registry()
    reset_registry()
    assert get_registry() is not first


def _cli_env(site) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(FIXTURE_PLUGINS), str(REPO)])
    env.pop("RMROUTE_PLUGINS", None)
    env.pop("RMROUTE_DISABLE_PLUGINS", None)
    return env


def test_cli_plugins_json_lists_builtins_example_and_failures(fixture_site):
    out = subprocess.run(
        [sys.executable, "-m", "rmroute.harness.cli", "plugins", "--json"],
        capture_output=True, text=True, env=_cli_env(fixture_site), cwd=REPO, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    routers = {e["name"]: e["plugin"] for e in data["entries"]["router"]}
    assert routers["random"] == "builtin-routers" and routers["fixture-first-arm"] == "fixture-good"
    # the example package is installed into the venv by `make`; it must be discovered like any other
    assert routers.get("epsilon-greedy") == "example"
    failed = {f["name"]: f for f in data["failed"]}
    assert set(failed) == {"fixture-broken-import", "fixture-raising-hook"}
    assert "ImportError" in failed["fixture-broken-import"]["error"]


# ---- create_ref: a plugin ref as configs write it -----------------------------------------------
def test_create_ref_takes_a_name_a_mapping_or_a_config_ref():
    from rmroute.harness.core.config import PluginRef
    from rmroute.harness.core.plugins import create_ref, parse_ref

    assert parse_ref("single", "r") == ("single", {})
    assert parse_ref({"name": "single", "params": {"arm": 2}, "label": "s2"}, "r") == ("single", {"arm": 2})
    assert parse_ref({"name": "single", "params": None}, "r") == ("single", {})
    assert parse_ref(PluginRef(name="single", params={"arm": 1}), "r") == ("single", {"arm": 1})
    for ref in ("single", {"name": "single", "params": {"arm": 1}}, PluginRef(name="single", params={"arm": 1})):
        router = create_ref("router", ref, n_arms=3, dim=2, seed=0)
        assert (router.n_arms, router.dim) == (3, 2)
    assert create_ref("router", {"name": "single", "params": {"arm": 2}}, n_arms=3, dim=2).arm == 2


@pytest.mark.parametrize("ref, message", [
    ({"name": "length", "param": {}}, r"reward_models\[0\]: unknown keys \['param'\]"),
    ({"params": {}}, r"reward_models\[0\]: 'name' must be a non-empty string"),
    ({"name": "length", "params": [1]}, r"reward_models\[0\] \(length\): params must be a mapping"),
    (3, r"reward_models\[0\]: expected a name or \{name, params\}, got 3"),
    ("", r"reward_models\[0\]: expected a name"),
])
def test_a_malformed_ref_is_a_config_error_naming_where(ref, message):
    from rmroute.harness.core.errors import ConfigError
    from rmroute.harness.core.plugins import PluginRefError, create_ref

    with pytest.raises(PluginRefError, match=message) as info:
        create_ref("reward_model", ref, "reward_models[0]")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_create_ref_refuses_params_the_caller_supplies():
    from rmroute.harness.core.plugins import PluginRefError, create_ref

    with pytest.raises(PluginRefError, match=r"router \(random\): params \['seed'\] are set by rmroute"):
        create_ref("router", {"name": "random", "params": {"seed": 3}}, n_arms=2, dim=1, seed=0)
    with pytest.raises(UnknownPluginError, match="did you mean 'random'"):
        create_ref("router", "randm", n_arms=2, dim=1)


# ---- the two kinds of suite: benchmarks and evaluation suites ----------------------------------
class _TwoSuites:
    """A plugin registering one benchmark and one evaluation suite (and a suite of no kind)."""

    @staticmethod
    def _benchmark(seed: int = 0):
        return ("benchmark", seed)

    @staticmethod
    def _eval_suite(limit: int | None = None):
        return ("eval", limit)

    @hookimpl
    def register_suites(self, register):
        register("tiny-bench", self._benchmark, kind="benchmark")
        register("tiny-eval", self._eval_suite, kind="eval")
        register("kindless", self._benchmark)


@pytest.fixture
def two_suites():
    reset_registry(build_registry(extra_plugins=[("two-suites", _TwoSuites())]))
    yield
    reset_registry()


def test_benchmarks_and_evaluation_suites_are_told_apart_by_metadata_kind(two_suites):
    from rmroute.harness.core.plugins import create_benchmark, create_eval_suite, suite_entries

    benchmarks, evals = [e.name for e in suite_entries("benchmark")], [e.name for e in suite_entries("eval")]
    assert "tiny-bench" in benchmarks and "rmroute-pairs-v1" in benchmarks and "tiny-eval" not in benchmarks
    assert "tiny-eval" in evals and "gsm8k" in evals and "tiny-bench" not in evals and "kindless" not in evals
    assert create_benchmark("tiny-bench", 7) == ("benchmark", 7)
    assert create_benchmark("tiny-bench") == ("benchmark", 0)
    assert create_eval_suite("tiny-eval") == ("eval", None)
    assert create_eval_suite({"name": "tiny-eval", "params": {"limit": 3}, "label": "t"}) == ("eval", 3)


def test_a_suite_of_the_wrong_kind_is_refused_naming_it_and_what_was_expected(two_suites):
    from rmroute.harness.core.plugins import SuiteKindError, create_benchmark, create_eval_suite, suite_entries

    with pytest.raises(SuiteKindError) as err:
        create_benchmark("tiny-eval", 0)
    msg = str(err.value)
    assert "suite 'tiny-eval' is not a benchmark (kind 'eval')" in msg and "tiny-bench" in msg
    assert isinstance(err.value, PluginError)
    with pytest.raises(SuiteKindError) as err:
        create_eval_suite({"name": "tiny-bench"})
    msg = str(err.value)
    assert "suite 'tiny-bench' is not an evaluation suite (kind 'benchmark')" in msg and "tiny-eval" in msg
    with pytest.raises(SuiteKindError, match="'kindless' is not a benchmark \\(kind None\\)"):
        create_benchmark("kindless")
    with pytest.raises(UnknownPluginError, match="unknown suite 'tiny-bnch'.*did you mean 'tiny-bench'"):
        create_benchmark("tiny-bnch")
    with pytest.raises(PluginError, match="accepted parameters: limit"):
        create_eval_suite({"name": "tiny-eval", "params": {"limt": 3}})
    with pytest.raises(ValueError, match="unknown suite kind 'benchmarks'"):
        suite_entries("benchmarks")
