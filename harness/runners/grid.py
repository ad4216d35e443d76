"""The run grid the runners share: cells, run ids, ``--only``, ``--resume``, run records, failures.

A runner (replay, train, evaluate) expands its config into :class:`Cell` s: one per run file, named
by a scenario (replay: the scenario; evaluate: the evaluation-suite key; train: ``default``), a label
(the router's or the policy's) and a seed, carrying whatever the runner needs to run it. A
:class:`Grid` then does what every runner does around its own work:

* run ids ``<prefix>--<label>--seed<seed>--<config sha256[:10]>`` (:func:`run_id`; the prefix is the
  scenario, or ``train``) and run files ``<out>/runs/<config suite>/<run id>.json``;
* ``--only`` (:meth:`Grid.select`): the cells whose label, seed and scenario match the ones given
  (what `rmroute reproduce` passes); no match is a ConfigError;
* ``--resume`` (:meth:`Grid.pending`): a cell whose run file is readable, self-consistent and ok
  (:func:`rmroute.harness.results.finished_ok`) is not run again;
* one cell's failure does not lose the others (:func:`attempt`): a cell that raises becomes a run
  file with status ``failed`` and the error;
* run records (:meth:`Grid.write`): the fields every run file shares (ids, config and its sha256,
  code and package versions, timing, status) filled in once; the runner adds its own.

``--executor`` is ``local`` or ``ray`` (:func:`check_executor`); :func:`ray_session` starts Ray for
the replay and train runners, which distribute their cells differently (replay: one task per cell on
shared data; train: one task per router entry and seed, each building its own environment). Both
make their tasks with :func:`ray_task`: a task whose worker process dies (killed, out of memory, its
node lost) is run again, up to :data:`RAY_MAX_RETRIES` times, so every cell must be safe to run
twice; :func:`ray_results` collects the tasks' values in order, a task that still failed as the
error it gave, so one lost task does not lose the others.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from rmroute.harness.core.config import config_sha256, slug
from rmroute.harness.core.errors import ConfigError, NotBuiltError
from rmroute.harness.results import (KEY_PACKAGES, RunRecord, code_version, finished_ok, now_iso, package_versions,
                                     write_run)

EXECUTORS = ("local", "ray")

#: How many times Ray runs a task again when its worker process dies before the task counts as
#: failed (Ray's own default for tasks is also 3; it is set here so the behaviour is ours, not a
#: library default's). An exception raised inside a cell is not retried: the runner records it.
RAY_MAX_RETRIES = 3


def run_id(prefix: str, label: str, seed: int, config_sha: str) -> str:
    """The run id (and file name stem) of one cell: ``<prefix>--<label>--seed<seed>--<sha[:10]>``, slugged."""
    return f"{slug(prefix)}--{slug(label)}--seed{seed}--{config_sha[:10]}"


def jsonable_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Router params as a run file stores them: an array (a prior from the offline bundle) as ``array[shape]``."""
    return {k: (v if not isinstance(v, np.ndarray) else f"array{list(v.shape)}") for k, v in params.items()}


def check_executor(executor: str) -> None:
    """A ConfigError unless ``executor`` is one of :data:`EXECUTORS`."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be 'local' or 'ray', got {executor!r}")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: one run file."""

    label: str
    seed: int
    scenario: str = "default"
    prefix: str | None = None  # the run id's first part; default: the scenario
    item: Any = field(default=None, compare=False)  # what the runner runs (a router spec, a policy and suite, ...)


@dataclass
class Outcome:
    """What running one cell gave: status ``ok`` and the runner's value, or ``failed`` and the error."""

    status: str
    error: str | None
    value: Any
    wall_s: float


def attempt(fn: Callable[..., Any], *args: Any, reraise: tuple[type[BaseException], ...] = (), **kwargs: Any) -> Outcome:
    """``fn(*args, **kwargs)`` as an :class:`Outcome`, timed; an exception (other than ``reraise``)
    makes a failed outcome ``"<type>: <message>"``, so one cell's failure does not lose the others."""
    t0 = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
    except reraise:
        raise
    except Exception as exc:  # noqa: BLE001 - one cell's failure must not lose the others
        return Outcome("failed", f"{type(exc).__name__}: {exc}", None, time.perf_counter() - t0)
    return Outcome("ok", None, value, time.perf_counter() - t0)


class Grid:
    """One config's grid: where each cell's run file goes, which cells run, and their run records."""

    def __init__(self, cfg, config_path, out_dir, kind: str, packages: Sequence[str] = KEY_PACKAGES) -> None:
        self.cfg, self.config_path, self.kind = cfg, config_path, kind
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / "runs" / cfg.suite
        self.sha = config_sha256(cfg)
        self.code, self.packages = code_version(), package_versions(tuple(packages))

    def run_id(self, cell: Cell) -> str:
        return run_id(cell.prefix or cell.scenario, cell.label, cell.seed, self.sha)

    def path(self, cell: Cell) -> Path:
        return self.folder / f"{self.run_id(cell)}.json"

    def select(self, cells: Sequence[Cell], only: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[Cell]:
        """``--only``: the cells whose label, seed and scenario equal those ``only`` gives (keys it
        leaves out match every cell; other keys are the runner's), or, for a list of such mappings
        (`rmroute reproduce` of several runs of one config), the cells that match any of them; all
        cells when ``only`` is empty."""
        if not only:
            return list(cells)
        wanted = [only] if isinstance(only, Mapping) else list(only)
        chosen = []
        for want in wanted:
            keys = [k for k in ("label", "seed", "scenario") if k in want]
            match = [c for c in cells if all(getattr(c, k) == want[k] for k in keys)]
            if not match:
                raise ConfigError(f"{self.config_path}: no grid cell matches {dict(want)}")
            chosen += [c for c in match if c not in chosen]
        return chosen

    def pending(self, cells: Sequence[Cell], resume: bool) -> list[Cell]:
        """The cells to run: all of them, or with ``resume`` those without a finished, consistent run file."""
        return [c for c in cells if not (resume and finished_ok(self.path(c)))]

    def write(self, cell: Cell, outcome: Outcome, **fields: Any) -> Path:
        """Write the cell's run record: the shared fields from the grid and ``outcome``, the rest
        (router, reward_models, data, metrics, command, extra, ...) from the runner."""
        record = RunRecord(
            run_id=self.run_id(cell), kind=self.kind, suite=self.cfg.suite, scenario=cell.scenario, seed=cell.seed,
            status=outcome.status, error=outcome.error, wall_s=outcome.wall_s,
            config=self.cfg.model_dump(mode="json"), config_sha256=self.sha, code=self.code, packages=self.packages,
            created=now_iso(), **fields)
        return write_run(record, self.out_dir)


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """The ``ray`` module with Ray running: a local Ray with 2 CPUs, or the cluster at ``address``.

    Shuts down only a Ray it started itself; used by the replay and train runners' ``--executor ray``.
    """
    try:
        import ray
    except ImportError:
        raise NotBuiltError("--executor ray needs Ray: pip install 'rmroute[distributed]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else 2, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def ray_task(ray: Any, fn: Callable[..., Any], **resources: float) -> Any:
    """``fn`` as a Ray remote function reserving ``resources`` (``num_cpus``, ``num_gpus``).

    When the worker process running it dies, Ray runs it again from the same arguments, up to
    :data:`RAY_MAX_RETRIES` times (``retry_exceptions`` stays off: an exception the cell raises is
    its result, not a reason to retry). A cell must therefore be safe to run twice: the replay
    runner's tasks only return values (the driver writes the run files); the train runner's tasks
    write their run files atomically, under names fixed by the cell, and start again from the first
    iteration (or, under ``--resume``, from the last checkpoint), so a retry replaces what a killed
    attempt left and never adds a second file.
    """
    return ray.remote(max_retries=RAY_MAX_RETRIES, retry_exceptions=False, **resources)(fn)


def ray_results(ray: Any, refs: Sequence[Any]) -> Iterator[tuple[Any, str | None]]:
    """``(value, None)`` for each task of ``refs`` in order, or ``(None, error)`` for a task that failed
    (its worker died more than :data:`RAY_MAX_RETRIES` times, its node was lost, or it raised), so
    the tasks after a failed one are still collected."""
    for ref in refs:
        try:
            yield ray.get(ref), None
        except ray.exceptions.RayError as exc:
            yield None, ray_failure(exc)


def ray_failure(exc: BaseException) -> str:
    """A Ray error as one line: the exception a task raised (``RayTaskError.cause``), else Ray's own
    error (a worker that died for good, a lost node or object) with the retries it had."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {lines[0] if lines else 'no message'} "
            f"(Ray runs a task again up to {RAY_MAX_RETRIES} times when its worker dies)")
