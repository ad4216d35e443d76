"""The ``evaluate`` runner: score policies (base models or trained checkpoints) on evaluation suites.

A config (``kind: evaluate``) names the policies, the suites, the generator that samples from each
policy and the judge the judge-based suites use::

    settings:
      policies:
        - {label: base, policy: {model: tiny}}          # a PolicySpec (harness/pipelines/policy.py)
        - {train_runs: results/runs/train-tiny}         # every ok train run there: its policy + adapter
      suites: [{name: gsm8k, params: {limit: 50}}, {name: alpaca-eval, params: {limit: 50}}]
      generator: {name: transformers, params: {temperature: 0.0, max_new_tokens: 256}}
      judge: {name: rm-judge, params: {reward_model: length}}

One run JSON per (policy, evaluation suite, seed) in ``results/runs/<suite>/`` (``<suite>``: the
config's results folder; the evaluation suite's key, its ``label`` or name, is the run's
``scenario``): ``metrics`` are the suite's headline numbers, ``extra`` holds the CIs, the suite's
flags, the policy and the path of the per-sample log (kept next to the run JSON, in
``<run_id>.samples/``). A suite that fails is recorded as a failed run with its error; the other
suites and policies still run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from rmroute.harness.core.config import (Name, NamedRef, PluginRef, Problems, StrictModel, check_plugin, check_run_ids,
                                         slug, slug_clashes)
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.plugins import SuiteKindError, create_eval_suite, create_ref, suite_entry
from rmroute.harness.determinism import describe
from rmroute.harness.pipelines.policy import PolicySpec, load_policy
from rmroute.harness.progress import progress_bar
from rmroute.harness.paths import find_config_path, not_found
from rmroute.harness.results import KEY_PACKAGES, DataInfo, RouterInfo, confined, load_run
from rmroute.harness.runners import grid, settings_of


class PolicyEntry(StrictModel):
    """One policy to evaluate: a spec, one train run JSON, or a folder of train run JSONs."""

    label: Name | None = Field(None, description="row name on the policy leaderboard (default: from the spec / train run)")
    policy: PolicySpec | None = None
    train_run: str | None = Field(None, description="a train run JSON: its policy spec with its final adapter")
    train_runs: str | None = Field(None, description="a folder of train run JSONs: each ok run is a policy")

    @model_validator(mode="after")
    def _exactly_one(self) -> "PolicyEntry":
        given = [k for k in ("policy", "train_run", "train_runs") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of policy, train_run, train_runs (got {', '.join(given) or 'none'})")
        return self


class EvaluateSettings(StrictModel):
    """An evaluate config's ``settings``: the policies, the evaluation suites, the generator and the judge."""

    policies: list[PolicyEntry] = Field(min_length=1)
    suites: list[NamedRef] = Field(min_length=1)
    generator: PluginRef = Field(default_factory=lambda: PluginRef(
        name="transformers", params={"temperature": 0.0, "max_new_tokens": 256}))
    judge: PluginRef | None = None
    device: str | None = Field(None, description="where every policy runs (auto, cpu, cuda:N); default: each policy's own `device`")


#: the model `rmroute validate` checks an evaluate config's `settings` against
SETTINGS = EvaluateSettings


@dataclass
class PolicyPlan:
    """A resolved policy: what to load, how to label it, and where it came from."""

    label: str
    spec: PolicySpec
    router: str = "base"
    reward_models: tuple[str, ...] = ()
    train_run: str | None = None


def policy_from_train_run(path: Path, label: str | None = None) -> PolicyPlan:
    """The policy a train run produced: its base spec with the run's final LoRA adapter on top."""
    run = load_run(path)
    if run.kind != "train":
        raise ConfigError(f"{path}: a {run.kind!r} run, not a train run")
    if run.status != "ok":
        raise ConfigError(f"{path}: the train run failed ({run.error}); nothing to evaluate")
    # extra.adapter: relative to the run JSON's folder; extra.checkpoint: where training wrote it
    spec_data, adapter = run.extra.get("policy"), run.extra.get("adapter") or run.extra.get("checkpoint")
    if not isinstance(spec_data, dict) or not adapter:
        raise ConfigError(f"{path}: extra.policy and extra.adapter are missing (not written by `rmroute run` kind train?)")
    adapter_path = Path(adapter)
    if not adapter_path.is_absolute():
        adapter_path = (path.parent / adapter_path).resolve()
    spec = PolicySpec.model_validate({**spec_data, "adapter": str(adapter_path)})
    router_label = run.router.label or run.router.name
    return PolicyPlan(label=label or f"{router_label}@seed{run.seed}", spec=spec, router=router_label,
                      reward_models=tuple(run.reward_models), train_run=str(path))


def resolve_policies(settings: EvaluateSettings, config_path: Path) -> list[PolicyPlan]:
    """Expand the config's policy entries; ``train_run`` / ``train_runs`` by the path rule of
    :mod:`rmroute.harness.paths` (the config's folder when there, else the working directory)."""
    plans: list[PolicyPlan] = []
    for i, entry in enumerate(settings.policies):
        if entry.policy is not None:
            plans.append(PolicyPlan(label=entry.label or slug(Path(entry.policy.model).name or entry.policy.model),
                                    spec=entry.policy))
        elif entry.train_run is not None:
            found, _ = find_config_path(entry.train_run, config_path)
            plans.append(policy_from_train_run(found or Path(entry.train_run), entry.label))
        else:
            found, tried = find_config_path(entry.train_runs, config_path, "dir")
            if found is None:
                raise ConfigError(f"{config_path}: settings.policies[{i}].train_runs: {not_found(entry.train_runs, tried, 'dir')}")
            folder = found
            files = sorted(folder.glob("*.json")) if folder.is_dir() else []
            found = []
            for f in files:
                try:
                    found.append(policy_from_train_run(f))
                except ConfigError:
                    continue  # failed or foreign runs are not policies
            if not found:
                raise ConfigError(f"{config_path}: settings.policies[{i}].train_runs: no ok train run in {folder}")
            plans.extend(found)
    labels = [p.label for p in plans]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"{config_path}: settings.policies: duplicate labels {dupes}; give each a distinct label")
    return plans


def check_config(cfg, path, tree) -> None:
    """What `rmroute validate` checks of an evaluate config beyond its models (one ConfigError listing
    every problem): the suites are registered evaluation suites, the generator and judge are
    registered, all with params that fit; the policies resolve (train runs exist and are ok); suite
    keys and policy labels each give their own file names; every run id fits in a file name."""
    settings: EvaluateSettings = settings_of(cfg)
    problems = Problems(path, tree)
    check_plugin(problems, ("settings", "generator"), "generator", settings.generator.name, settings.generator.params,
                 frozenset({"model", "tokenizer"}))
    if settings.judge:
        check_plugin(problems, ("settings", "judge"), "judge", settings.judge.name, settings.judge.params)
    for i, ref in enumerate(settings.suites):
        loc = ("settings", "suites", i)
        if check_plugin(problems, loc, "suite", ref.name, ref.params) is not None:
            try:
                suite_entry(ref.name, "eval")
            except SuiteKindError as exc:
                problems.add(loc + ("name",), str(exc))
    keys = [ref.label or ref.name for ref in settings.suites]
    for first, a, i, b in slug_clashes(list(enumerate(keys))):
        problems.add(("settings", "suites", i), f"{b!r} gives the same file names as settings.suites[{first}] ({a!r}); "
                                                "give each entry a distinct `label`")
    try:
        plans = resolve_policies(settings, Path(path))
    except ConfigError as exc:
        problems.add(("settings", "policies"), str(exc).removeprefix(f"{path}: "))
        plans = []
    for _, a, _, b in slug_clashes([(None, p.label) for p in plans]):
        problems.add(("settings", "policies"), f"the policies {a!r} and {b!r} give the same file names; give them "
                                               "distinct labels")
    check_run_ids(problems, [(("settings", "policies"), grid.run_id(key, p.label, max(cfg.seeds), "0" * 64))
                             for p in plans for key in keys])
    problems.raise_if_any()


def eval_suite_sha(ref: PluginRef) -> str:
    """What an evaluate run records as its data sha256: the hash of the evaluation-suite entry (name, params, label)."""
    return hashlib.sha256(json.dumps(ref.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def plan(cfg, config_path) -> str:
    """What `rmroute run --dry-run` prints for an evaluate config (nothing is loaded)."""
    settings: EvaluateSettings = settings_of(cfg)
    plans = resolve_policies(settings, Path(config_path))
    lines = [f"evaluate {config_path}: {len(plans)} polic(ies) × {len(settings.suites)} suite(s) × "
             f"{len(cfg.seeds)} seed(s) = {len(plans) * len(settings.suites) * len(cfg.seeds)} runs"]
    for p in plans:
        lines.append(f"  policy {p.label}: model {p.spec.model}" + (f" + adapter {p.spec.adapter}" if p.spec.adapter else ""))
    for s in settings.suites:
        lines.append(f"  suite {s.name} {s.params or ''}")
    lines.append(f"  generator {settings.generator.name} {settings.generator.params}")
    lines.append(f"  judge {settings.judge.name if settings.judge else '(none)'}")
    return "\n".join(lines)


def _flags(ref: PluginRef, result: Any) -> dict[str, Any]:
    """The suite's flags, plus ``limit`` whenever the config evaluates a subset (shown on the board)."""
    flags = dict(result.flags) if result is not None else {}
    if ref.params.get("limit") is not None:
        flags.setdefault("limit", ref.params["limit"])
    return flags


def _stats(judge: Any) -> dict[str, Any]:
    return dict(getattr(judge, "stats", None) or {})


def _stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What one suite cost the (shared) judge: numeric counters as differences, the rest as is."""
    out = {}
    for key, value in after.items():
        old = before.get(key, 0)
        out[key] = value - old if isinstance(value, (int, float)) and isinstance(old, (int, float)) else value
    return out


class _Session:
    """What the cells of one evaluate run share: one policy in memory at a time (with its
    generator) and the judge, built on first need and shared by every suite and policy."""

    def __init__(self, settings: EvaluateSettings, config_path: Path) -> None:
        self.settings, self.config_path = settings, config_path
        self.loaded: dict[str, tuple[Any, Any]] = {}
        self.judge: Any = None
        self.before: dict[str, Any] = {}  # the judge's counters before the current suite

    def evaluate(self, p: PolicyPlan, ref: NamedRef, eval_suite: Any, seed: int, samples_dir: Path) -> Any:
        """One (policy, suite, seed): the suite's result (its per-sample log goes to ``samples_dir``)."""
        settings = self.settings
        self.before = {}
        if p.label not in self.loaded:
            self.loaded.clear()  # one policy in memory at a time
            policy = load_policy(p.spec, device=settings.device)
            gen = create_ref("generator", settings.generator, "settings.generator", model=policy.model,
                             tokenizer=policy.tokenizer)
            self.loaded[p.label] = (policy, gen)
        policy, gen = self.loaded[p.label]
        if eval_suite.needs_judge and settings.judge is None:
            raise ConfigError(f"{self.config_path}: suite {ref.name!r} needs a judge: set settings.judge")
        if eval_suite.needs_judge and self.judge is None:
            self.judge = create_ref("judge", settings.judge, "settings.judge")
        samples_dir.mkdir(parents=True, exist_ok=True)
        self.before = _stats(self.judge)
        return eval_suite.evaluate(policy, gen, self.judge if eval_suite.needs_judge else None, samples_dir,
                              np.random.default_rng(seed))


def run(cfg, config_path, out_dir, resume: bool = False, only: dict[str, Any] | None = None) -> list[Path]:
    """Evaluate every (policy, suite, seed); one run JSON each (failed suites included). ``only``
    (``{"label": policy, "scenario": evaluation suite key, "seed"}``) runs that one cell: `rmroute reproduce` uses it."""
    config_path = Path(config_path)
    settings: EvaluateSettings = settings_of(cfg)
    for i, ref in enumerate(settings.suites):
        try:
            suite_entry(ref.name, "eval")
        except SuiteKindError as exc:
            raise ConfigError(f"{config_path}: settings.suites[{i}]: {exc}") from None
    keys = [ref.label or ref.name for ref in settings.suites]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError(f"{config_path}: settings.suites: {dupes} appear more than once; give each entry a distinct `label`")
    plans = resolve_policies(settings, config_path)
    runs = grid.Grid(cfg, config_path, out_dir, "evaluate", packages=KEY_PACKAGES + ("lm_eval", "alpaca_eval"))
    eval_suites = [(key, ref, create_eval_suite(ref, f"settings.suites[{i}]"))
                   for i, (key, ref) in enumerate(zip(keys, settings.suites))]
    # policy-major: each policy is loaded once
    cells = runs.select([grid.Cell(p.label, seed, key, item=(p, ref, eval_suite))
                         for p in plans for seed in cfg.seeds for key, ref, eval_suite in eval_suites], only)
    todo = runs.pending(cells, resume)
    session = _Session(settings, config_path)
    with progress_bar() as progress:
        task = progress.add_task("evaluate", total=len(todo))
        for cell in todo:
            (p, ref, eval_suite), key, seed = cell.item, cell.scenario, cell.seed
            progress.update(task, description=f"evaluate {p.label} on {key} (seed {seed})")
            samples_dir = confined(runs.out_dir, runs.folder / f"{runs.run_id(cell)}.samples")
            outcome = grid.attempt(session.evaluate, p, ref, eval_suite, seed, samples_dir)
            result = outcome.value
            samples = None
            if result is not None and result.samples:
                try:
                    samples = Path(result.samples).resolve().relative_to(runs.folder.resolve()).as_posix()
                except ValueError:
                    samples = str(result.samples)
            judge_obj = session.judge if eval_suite.needs_judge else None
            runs.write(
                cell, outcome,
                router=RouterInfo(name=p.router, params={}, label=p.label),
                reward_models=list(p.reward_models),
                data=DataInfo(name=ref.name, sha256=eval_suite_sha(ref), n=result.n_items if result else 0),
                metrics=dict(result.metrics) if result else {},
                command=f"rmroute run {config_path}",
                extra={
                    "eval_suite": key, "headline": list(getattr(eval_suite, "headline", None) or (result.metrics if result else [])),
                    "policy_label": p.label, "policy": p.spec.model_dump(mode="json"),
                    "train_run": p.train_run, "ci": {k: list(v) for k, v in (result.ci if result else {}).items()},
                    "flags": _flags(ref, result), "samples": samples,
                    "judge": getattr(judge_obj, "name", None),
                    "judge_stats": _stats_delta(session.before, _stats(judge_obj)) if judge_obj is not None else {},
                    "generator": settings.generator.model_dump(mode="json"),
                    "compute": describe(),
                },
            )
            progress.advance(task)
    return [runs.path(c) for c in cells]
