"""The run record: the schema of one run file (``<root>/runs/<suite>/<run_id>.json``).

Every runner writes a :class:`RunRecord` per run (through :func:`rmroute.harness.results.write_run`);
the leaderboard, ``rmroute reproduce`` and the self-consistency check (:mod:`rmroute.harness.integrity`)
read nothing else. ``SCHEMA_VERSION`` is the version this rmroute writes; it reads every version in
``READABLE_SCHEMA_VERSIONS``. Version 2 adds, to a replay run's ``extra``, what split-aware
statistics need: ``test_outcomes`` with ``h`` (a half: tie or no decision) beside ``1`` and ``0``,
``test_items`` (a global item id per test pair), ``fold``, ``arm_order``, ``offline_accuracy`` and
``feedback`` (docs/results.md); version 1 files have none of these and stay readable.

It sits below both :mod:`rmroute.harness.results` (the store, which loads only self-consistent
files) and :mod:`rmroute.harness.integrity` (the check); users import it from the store.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2
#: the versions the store loads (1: before item ids, folds and half outcomes)
READABLE_SCHEMA_VERSIONS = (1, 2)


class RouterInfo(BaseModel):
    """The run's router: plugin name, params (arrays as ``array[shape]``) and label."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None


class DataInfo(BaseModel):
    """The data the run used: a name, its sha256 and its size."""

    model_config = ConfigDict(extra="forbid")
    name: str
    sha256: str
    n: int


class CodeVersion(BaseModel):
    """The git commit of the code that ran, and whether the work tree had changes (None outside git)."""

    model_config = ConfigDict(extra="forbid")
    git_sha: str | None
    dirty: bool | None


class RunRecord(BaseModel):
    """Everything needed to read, compare and reproduce one run."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1, 2] = SCHEMA_VERSION
    run_id: str
    kind: Literal["replay", "train", "evaluate"]
    suite: str
    scenario: str = "default"
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None  # what went wrong, for failed runs (their metrics may be empty)
    router: RouterInfo
    reward_models: list[str]
    data: DataInfo
    seed: int
    metrics: dict[str, Any]
    per_domain: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rm_calls: dict[str, Any] = Field(default_factory=dict)
    wall_s: float
    config: dict[str, Any]
    config_sha256: str
    code: CodeVersion
    packages: dict[str, str]
    command: str
    created: str
    inputs: dict[str, str] = Field(default_factory=dict)  # sha256 of every input consumed (data, scores:<rm>, features, ...)
    extra: dict[str, Any] = Field(default_factory=dict)  # curves, per-sample log paths, notes
