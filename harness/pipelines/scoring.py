"""`rmroute score CONFIG`: score every pair of the config's data under every RM of its pool, once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rmroute.harness.analysis import correct
from rmroute.harness.assets import load_source
from rmroute.harness.core.config import RunConfig
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.types import PreferencePair
from rmroute.harness.pipelines.pool import build_reward_model, rm_label
from rmroute.harness.pipelines.score_cache import ScoreCache, ScoreReport, score_pairs


def config_pairs(cfg: RunConfig) -> dict[str, list[PreferencePair]]:
    """The pairs of each split named in ``cfg.data`` (split -> source spec or list of specs)."""
    if not cfg.data:
        raise ConfigError("config has no `data` section: give split -> source, e.g. data: {test: file:pairs.jsonl}")
    out: dict[str, list[PreferencePair]] = {}
    for split, specs in cfg.data.items():
        specs = [specs] if isinstance(specs, str) else specs
        if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
            raise ConfigError(f"data.{split}: expected a source spec string or a list of them, got {specs!r}")
        out[split] = [pair for spec in specs for pair in load_source(spec)]
    return out


def reward_models_to_score(cfg: RunConfig) -> tuple[list[Any], list[tuple[str, str]]]:
    """The config's RMs (:func:`rmroute.harness.pipelines.pool.build_reward_model`); one that fails to
    build is reported as ``(label, "could not be built: ...")`` and left out, the others go on."""
    rms, failed = [], []
    for ref in cfg.reward_models:
        try:
            rms.append(build_reward_model(ref))
        except Exception as exc:  # noqa: BLE001
            failed.append((rm_label(ref), f"could not be built: {type(exc).__name__}: {exc}"))
    return rms, failed


@dataclass
class ScoreSummary:
    reports: list[ScoreReport]
    failed: list[tuple[str, str]]
    accuracy: dict[str, float | None]  # per RM: share of labelled pairs it gets right (analysis.correct)
    n_pairs: int


def run_score(cfg: RunConfig, cache_dir: Path | None = None, show_progress: bool = True) -> ScoreSummary:
    """Score every pair of ``cfg.data`` under every RM that builds; per RM, the share of labelled pairs it gets right."""
    splits = config_pairs(cfg)
    pairs = [p for ps in splits.values() for p in ps]
    rms, failed = reward_models_to_score(cfg)
    a, b, reports = score_pairs(ScoreCache(cache_dir), rms, pairs, show_progress=show_progress, raise_on_failure=False)
    failed += [(r.rm, r.failed) for r in reports if r.failed]
    gold = np.array([p.gold_sign for p in pairs])
    labelled = gold != 0
    accuracy: dict[str, float | None] = {}
    for k, rm in enumerate(rms):
        if labelled.any():
            margin = a[labelled, k] - b[labelled, k]
            accuracy[rm.name] = float(np.mean(correct(margin, gold[labelled])))
        else:
            accuracy[rm.name] = None
    return ScoreSummary(reports=reports, failed=failed, accuracy=accuracy, n_pairs=len(pairs))
