"""The ``rmroute`` command line. Heavy libraries (torch, transformers) load only inside commands
that need them, so ``rmroute --help`` and ``rmroute plugins`` stay fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.table import Table

from rmroute.harness.core.errors import RmrouteError

app = typer.Typer(
    name="rmroute",
    help="Benchmark and evaluation harness for reward-model routing in RLHF.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
_DEBUG = False


#: the help of every command's ``--cache DIR``
CACHE_HELP = ("Cache root for this command (scores, embeddings, trained RMs, bundles, benchmarks): sets "
              "$RMROUTE_CACHE for the process before any work; default $RMROUTE_CACHE, else ~/.cache/rmroute.")


#: the cache root variable's value before a command's --cache set it (main puts it back)
_CACHE_BEFORE: list[Optional[str]] = []


def _use_cache(cache: Optional[Path]) -> None:
    """``--cache DIR``: make DIR (absolute) the cache root of this process, before anything reads it
    (:func:`rmroute.harness.assets.cache_root` reads ``$RMROUTE_CACHE`` on every call); :func:`main`
    puts the variable back afterwards."""
    if cache is not None:
        from rmroute.harness.assets import set_cache_root

        root = Path(cache).expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise RmrouteError(f"--cache {cache}: not a folder")
        _CACHE_BEFORE.append(set_cache_root(root))


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    global _DEBUG
    _DEBUG = _DEBUG or debug


@app.command()
def plugins(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
    check: bool = typer.Option(False, "--check", help="Run the conformance checks on every plugin that has defaults."),
) -> None:
    """List registered plugins (and the ones that failed to load)."""
    import warnings

    from rmroute.harness.core.plugins import get_registry

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        registry = get_registry()
    if as_json:
        print(json.dumps(registry.to_json(), indent=2))
        return
    table = Table(title="rmroute plugins")
    for col in ("kind", "name", "plugin", "description"):
        table.add_column(col)
    for kind, entries in registry.entries.items():
        for name, entry in sorted(entries.items()):
            table.add_row(kind, name, entry.plugin, str(entry.metadata.get("description", "")))
    console.print(table)
    for f in registry.failed:
        err_console.print(f"[yellow]skipped plugin {f.name!r} ({f.stage}): {f.error}[/yellow]")
    if check:
        _check_all(registry)


def _check_all(registry) -> None:
    from rmroute.harness.core.testing import check_entry

    failures = 0
    for kind, entries in registry.entries.items():
        for name, entry in sorted(entries.items()):
            status, detail = check_entry(entry)
            style = {"ok": "green", "fail": "red", "skip": "dim"}[status]
            console.print(f"[{style}]{status:4}[/{style}] {kind} {name}" + (f": {detail}" if detail else ""))
            failures += status == "fail"
    if failures:
        raise RmrouteError(f"{failures} plugin(s) failed the conformance checks")


#: how `rmroute validate` tells a config's kind from its keys (the first rule that matches)
CONFIG_KINDS = (
    ("run or group", "`kind:` (replay, train, evaluate; or group)"),
    ("serve-rm", "`reward_model:` (one RM to serve)"),
    ("rm-train", "`output_dir:` or `base_model:` (one RM to train)"),
    ("offline", "`pool:` with `featurizer:` / `heads:` (an offline-router config)"),
    ("pool", "`reward_models:`, `table:`, `train:` or `benchmark:` (a pool)"),
)


def config_kind(data: dict) -> str | None:
    """What kind of config ``data`` (a YAML mapping) is, by its keys (:data:`CONFIG_KINDS`): ``run``,
    ``group``, ``serve-rm``, ``rm-train``, ``offline``, ``pool``; None when no rule matches."""
    if "kind" in data:
        return "group" if data["kind"] == "group" else "run"
    if "reward_model" in data:
        return "serve-rm"
    if "output_dir" in data or "base_model" in data:
        return "rm-train"
    if "pool" in data or "heads" in data:
        return "offline"
    if any(k in data for k in ("reward_models", "table", "train", "benchmark")):
        return "pool"
    return None


def _validate_pool(path: Path, tree) -> str:
    """A pool config: it loads, its RM plugins are registered with params that fit, every
    ``trained:<name>@<pool>`` is in the cache, a table's file (or header) is there."""
    from rmroute.harness.core.config import Problems, check_plugin
    from rmroute.harness.pipelines.pool import load_pool_config, pool_rm_names, trained_by_name

    cfg = load_pool_config(path)
    problems = Problems(path, tree)
    for i, ref in enumerate(cfg.reward_models):
        check_plugin(problems, ("reward_models", i), "reward_model", ref.name, ref.params)
        model = str(ref.params.get("model", ""))
        if model.startswith("trained:") and "@" in model:
            try:
                trained_by_name(*model[len("trained:"):].split("@", 1))
            except RmrouteError as exc:
                problems.add(("reward_models", i, "params", "model"), str(exc))
    names = pool_rm_names(problems, ("table",), str(path))
    problems.raise_if_any()
    return f"pool {cfg.name!r}, {len(names or [])} RM(s): {', '.join(names or [])}"


def _validate_offline(path: Path, tree) -> str:
    """An offline-router config: it loads, and its pool (found by the path rule) loads."""
    from rmroute.harness.core.config import Problems
    from rmroute.harness.pipelines.offline import load_offline_config, pool_path
    from rmroute.harness.pipelines.pool import pool_rm_names

    path, cfg = load_offline_config(path)
    pool = pool_path(cfg, path)
    problems = Problems(path, tree)
    names = pool_rm_names(problems, ("pool",), str(pool))
    problems.raise_if_any()
    return f"offline-router config {cfg.name!r}, pool {pool} ({len(names or [])} RMs)"


def _validate_rm_train(path: Path, tree) -> str:
    """An RM training config: it loads, and each ``file:`` data source is there (by the path rule)."""
    from rmroute.harness.paths import resolve_source_spec
    from rmroute.harness.pipelines.rm_train import load_train_config

    cfg = load_train_config(path)
    for i, spec in enumerate(cfg.data):
        resolve_source_spec(spec, f"data[{i}]", path)
    return f"rm-train config, base_model {cfg.base_model!r}, {len(cfg.data)} data source(s), output_dir {cfg.output_dir}"


def _validate_one(path: Path) -> list[str]:
    """`rmroute validate` of one file: one ``path: ok (...)`` line per config it checked (a group's
    members each get their own); a :class:`RmrouteError` naming file, line and key when it fails."""
    from rmroute.harness.core.config import config_sha256, read_yaml_mapping
    from rmroute.harness.runners import config_paths, load_config

    path, data, tree = read_yaml_mapping(path, "config")
    kind = config_kind(data)
    if kind in ("run", "group"):
        out = []
        for member in config_paths(path):
            cfg = load_config(member)
            out.append(f"{member}: ok ({cfg.kind}, suite {cfg.suite!r}, config_sha256 {config_sha256(cfg)[:12]})")
        return out
    if kind == "serve-rm":
        from rmroute.harness.serve import load_serve_config

        cfg = load_serve_config(path)
        return [f"{path}: ok (serve-rm config, reward_model {cfg.reward_model.name!r}, port {cfg.port})"]
    checks = {"pool": _validate_pool, "offline": _validate_offline, "rm-train": _validate_rm_train}
    if kind is None:
        raise RmrouteError(f"{path}: not a config rmroute knows (keys: {', '.join(sorted(map(str, data))) or 'none'}); "
                           "expected one of: " + "; ".join(f"{k}: {how}" for k, how in CONFIG_KINDS))
    return [f"{path}: ok ({checks[kind](path, tree)})"]


@app.command()
def validate(config: Path = typer.Argument(..., help="Any rmroute config: a run config (replay, train, evaluate), a "
                                           "group, a pool, an offline-router, an rm-train or a serve-rm config.")) -> None:
    """Check a config without running it; its kind is told by its keys (``kind:`` for run configs and
    groups, ``reward_models``/``table`` for pools, ``pool`` + ``featurizer`` for offline routers,
    ``output_dir`` for RM training, ``reward_model`` for serve-rm). The files it refers to must
    exist, found as a run finds them (docs/configs.md, "Paths inside a config")."""
    for line in _validate_one(config):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command()
def run(
    config: Path = typer.Argument(..., help="A run config (YAML)."),
    out: Path = typer.Option(Path("results"), "--out", help="Results root; run files go to OUT/runs/<suite>/."),
    resume: bool = typer.Option(False, "--resume", help="Skip grid cells whose run file already exists (status ok)."),
    no_leaderboard: bool = typer.Option(False, "--no-leaderboard", help="Do not rebuild the leaderboard afterwards."),
    executor: str = typer.Option("local", "--executor", help="local, or ray (grid cells as Ray tasks; the `distributed` extra)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="An existing Ray cluster (default: a local Ray with 2 CPUs)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs, models to load, memory estimate) and stop."),
    add_router: list[str] = typer.Option([], "--add-router", help="Also run this router (NAME or NAME={json params}; "
                                         "repeatable) next to the config's own: a plugin router on a board track."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP),
    stop_after: Optional[int] = typer.Option(None, "--stop-after", min=1, hidden=True,
                                             help="train: stop every run after this many iterations, keeping its "
                                                  "checkpoint (as if killed; for testing --resume)"),
) -> None:
    """Run a config (replay, train or evaluate; or each config of a ``kind: group`` file), write one
    JSON per run, rebuild the leaderboard. Under ``accelerate launch --num_processes N`` a train config
    trains data-parallel (docs/scale.md)."""
    from rmroute.harness.runners import config_paths, with_routers

    _use_cache(cache)
    paths = config_paths(config)
    copies = [with_routers(p, add_router) for p in paths] if add_router else []
    try:
        _run_configs(config, copies or paths, out, resume, no_leaderboard, executor, ray_address, dry_run, stop_after)
    finally:
        for copy in copies:  # --add-router's copies of the configs (next to them, so paths resolve alike)
            copy.unlink(missing_ok=True)


def _run_configs(config: Path, paths: list[Path], out: Path, resume: bool, no_leaderboard: bool, executor: str,
                 ray_address: Optional[str], dry_run: bool, stop_after: Optional[int] = None) -> None:
    from rmroute.harness.runners import get_plan, load_config, run_config
    from rmroute.harness.core.errors import ConfigError
    from rmroute.harness.runners.train.dist import launch_rank, world_size

    configs = [(path, load_config(path)) for path in paths]  # every member is checked before any runs
    if dry_run:
        for path, cfg in configs:
            typer.echo(get_plan(cfg.kind)(cfg, path))
        return
    world = world_size()
    if world > 1:
        other = [f"{path} (kind: {cfg.kind})" for path, cfg in configs if cfg.kind != "train"]
        if other:
            raise ConfigError(f"launched as {world} processes: only train configs run data-parallel; run "
                              f"{', '.join(other)} with one process (docs/scale.md)")
        if executor != "local":
            raise ConfigError("--executor ray and accelerate launch do not mix: Ray runs one (router, seed) per task; "
                              "accelerate spreads one run over processes (docs/scale.md)")
    options = {"resume": resume, "stop_after": stop_after}
    if executor != "local" or ray_address:
        options.update(executor=executor, address=ray_address)
    written: list[Path] = []
    broken: list[str] = []
    for path, cfg in configs:
        try:
            mine = run_config(cfg, path, out, **options)
        except RmrouteError as exc:
            if len(configs) == 1:
                raise
            broken.append(f"{path}: {exc}")  # one member's failure does not lose the others' runs
            err_console.print(f"failed: {path}: {exc}", markup=False, highlight=False, soft_wrap=True)
            continue
        written += mine
        if launch_rank() == 0:  # under accelerate launch, rank 0 writes the runs and speaks for the launch
            console.print(f"wrote {len(mine)} run file(s) under {out / 'runs' / cfg.suite}")
    if launch_rank() != 0:
        return
    if not no_leaderboard:
        leaderboard(out, site=None)
    if broken:
        raise RmrouteError(f"{len(broken)} of {len(configs)} config(s) of {config} did not run: " + "; ".join(broken))
    _fail_on_failed_runs(written)


def _fail_on_failed_runs(paths: list[Path]) -> None:
    """Exit non-zero, naming them, when any of the runs just written has status failed."""
    from rmroute.harness.board.model import first_line
    from rmroute.harness.results import load_run

    failed = [(p, r.error) for p in paths for r in [load_run(p)] if r.status == "failed"]
    if failed:
        for p, error in failed:
            err_console.print(f"failed: {p.name}: {first_line(error)}", markup=False, highlight=False, soft_wrap=True)
        raise RmrouteError(f"{len(failed)} of {len(paths)} run(s) failed (listed above; their run files say why)")


@app.command()
def reproduce(run_files: list[Path] = typer.Argument(..., help="Run JSON file(s) under results/runs/ (a shell glob: "
                                                 "every run of a leaderboard table).")) -> None:
    """Re-run exactly each run's config, router, seed and scenario; report metric by metric whether it
    matches. Runs of one config are re-run together (the data is built once)."""
    import tempfile

    from rmroute.harness.results import load_run
    from rmroute.harness.runners import run_config

    recs = [(f, load_run(f)) for f in run_files]
    by_config: dict[str, list] = {}
    for f, rec in recs:
        by_config.setdefault(rec.config_sha256, []).append((f, rec, _checked_run_config(f, rec)))
    problems: list[str] = []
    for members in by_config.values():
        cfg = members[0][2]
        only = [{"label": rec.router.label or rec.router.name, "seed": rec.seed, "scenario": rec.scenario}
                for _, rec, _ in members]
        with tempfile.TemporaryDirectory() as tmp:
            paths = run_config(cfg, Path(f"<config of {members[0][0]}>"), Path(tmp),
                               only=only[0] if len(only) == 1 else only)
            new_by_id = {(r.router.label or r.router.name, r.seed, r.scenario): r for r in map(load_run, paths)}
        for (f, rec, _), want in zip(members, only):
            problem = _compare_reproduced(f, rec, new_by_id.get((want["label"], want["seed"], want["scenario"])),
                                          verbose=len(recs) == 1)
            if problem:
                problems.append(problem)
            elif len(recs) > 1:
                console.print(f"ok {f.name}: all {len(rec.metrics)} metrics and the per-item outcomes match")
    if problems:
        raise RmrouteError(f"{len(problems)} of {len(recs)} run(s) did not reproduce: " + "; ".join(problems))
    if len(recs) > 1:
        console.print(f"all {len(recs)} runs reproduce")


def _compare_reproduced(run_file: Path, rec, new, verbose: bool) -> str | None:
    """Compare a run with its re-run, metric by metric and per test pair; None when they match, else
    what differs (the table is printed when ``verbose``)."""
    if new is None or new.status != "ok":
        return f"reproducing {run_file} failed: {getattr(new, 'error', 'no run was written')}"
    differ = _report_inputs(rec.inputs, new.inputs)
    table = Table(title=f"reproduce {run_file.name}")
    for col in ("metric", "recorded", "reproduced", "match"):
        table.add_column(col)
    mismatches = 0
    for key in sorted(set(rec.metrics) | set(new.metrics)):
        a, b = rec.metrics.get(key), new.metrics.get(key)
        same = a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
        mismatches += not same
        table.add_row(key, repr(a), repr(b), "[green]yes[/green]" if same else "[red]NO[/red]")
    for key in ("test_outcomes", "test_items"):  # per test pair: the scores, and which item each pair is
        same = rec.extra.get(key) == new.extra.get(key)
        mismatches += not same
        table.add_row(f"{key} (per pair)", "", "", "[green]yes[/green]" if same else "[red]NO[/red]")
    if verbose or mismatches:
        console.print(table)
    if mismatches:
        because = f"; inputs that differ: {', '.join(differ)}" if differ else ""
        return f"{mismatches} metric(s) of {run_file} did not reproduce{because}"
    if verbose:
        console.print(f"all {len(rec.metrics)} metrics and the per-item outcomes match")
    return None


def _checked_run_config(run_file: Path, rec):
    """The run's config, after checking the file is what rmroute wrote: the config hashes to its
    ``config_sha256``, the run id and suite are the ones that config gives, and its metrics agree
    with its own per-item outcomes (rmroute.harness.integrity)."""
    from pydantic import ValidationError

    from rmroute.harness.core.config import RunConfig, config_sha256
    from rmroute.harness.integrity import check_run

    try:
        cfg = RunConfig.model_validate(rec.config)
    except ValidationError as exc:
        raise RmrouteError(f"{run_file}: its config is not a valid run config: {exc.errors()[0]['msg']}") from None
    if config_sha256(cfg) != rec.config_sha256:
        raise RmrouteError(f"{run_file}: its config hashes to {config_sha256(cfg)[:12]}, not to its recorded "
                           f"config_sha256 {rec.config_sha256[:12]}: the file was edited or is not rmroute's")
    if rec.suite != cfg.suite or not rec.run_id.endswith(rec.config_sha256[:10]):
        raise RmrouteError(f"{run_file}: suite {rec.suite!r} / run id {rec.run_id!r} do not match its config")
    problems = check_run(rec)
    if problems:
        raise RmrouteError(f"{run_file}: not self-consistent: " + "; ".join(problems))
    return cfg


def _report_inputs(recorded: dict[str, str], reproduced: dict[str, str]) -> list[str]:
    """Print which inputs (data, each RM's scores, features, bundle) have the recorded sha256; return
    the names of those that differ."""
    if not recorded:
        console.print("this run file records no input hashes (written before rmroute recorded them)")
        return []
    table = Table(title="inputs (sha256)")
    for col in ("input", "recorded", "reproduced", "match"):
        table.add_column(col)
    differ = []
    for key in sorted(set(recorded) | set(reproduced)):
        a, b = recorded.get(key), reproduced.get(key)
        differ += [key] if a != b else []
        table.add_row(key, (a or "-")[:12], (b or "-")[:12], "[green]yes[/green]" if a == b else "[red]NO[/red]")
    console.print(table)
    return differ


@app.command()
def score(
    config: Path = typer.Argument(..., help="A config with `reward_models` and `data` (split -> source)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP + " Scores go to DIR/scores."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score every (RM, prompt, response) of a config once into the score cache (resumable)."""
    from rmroute.harness.pipelines.scoring import run_score
    from rmroute.harness.runners import load_config

    _use_cache(cache)
    summary = run_score(load_config(config, check_run=False), None, show_progress=not as_json)
    if as_json:
        print(json.dumps({
            "n_pairs": summary.n_pairs, "failed": summary.failed, "accuracy": summary.accuracy,
            "reports": [r.__dict__ for r in summary.reports],
        }, indent=2))
        return
    table = Table(title=f"scored {summary.n_pairs} pairs")
    for col in ("rm", "items", "cached", "scored", "abstained", "truncated", "items/s", "pair accuracy"):
        table.add_column(col)
    for r in summary.reports:
        rate = f"{r.scored / r.wall_s:,.1f}" if r.scored and r.wall_s > 0 else "-"
        acc = summary.accuracy.get(r.rm)
        table.add_row(r.rm, str(r.total), str(r.cached), str(r.scored), str(r.abstained), str(r.truncated), rate,
                      "-" if acc is None else f"{acc:.3f}")
    console.print(table)
    for r in summary.reports:
        for e in r.errors:
            err_console.print(f"[yellow]{r.rm}: {e}[/yellow]")
    for name, error in summary.failed:
        err_console.print(f"[red]{name}: {error}[/red]")
    if summary.failed:
        raise RmrouteError(f"{len(summary.failed)} RM(s) failed: {', '.join(n for n, _ in summary.failed)} "
                           "(the other RMs' scores are cached)")


@app.command("serve-rm")
def serve_rm(
    config: Path = typer.Argument(..., help="A serve config: reward_model, host, port, token_env, limits."),
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default from the config, else 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default from the config)."),
) -> None:
    """Serve a configured reward model over the OpenRLHF reward-server protocol (POST /get_reward)."""
    from rmroute.harness.serve import serve_from_config

    serve_from_config(config, host=host, port=port)


@app.command()
def leaderboard(
    root: Path = typer.Argument(Path("results"), help="Results root holding runs/."),
    site: Optional[Path] = typer.Option(None, "--site", help="Also write a static site into this folder: the HTML "
                                        "pages, plots and run files, relative links only (serve it as is)."),
) -> None:
    """Rebuild the leaderboard (front page, track pages, router cards, checks; Markdown, HTML, plots)
    from the run JSON files."""
    from rmroute.harness.board.build import build
    from rmroute.harness.board.terminal import print_top

    if not (Path(root) / "runs").is_dir():
        raise RmrouteError(f"{root}: no runs/ folder here; give the results root that `rmroute run --out` wrote")

    if site is not None and Path(site).resolve() == Path(root).resolve():
        raise RmrouteError(f"--site {site}: give a folder other than the results root")
    result = build(root, site=site)
    path, n_runs, n_skipped = result
    print_top(console, result.top)
    console.print(f"wrote {path} from {n_runs} run(s)" + (f", skipped {n_skipped} unreadable file(s)" if n_skipped else ""))
    console.print(f"wrote {result.html}")
    plots_dir = Path(root) / "plots"
    console.print(f"wrote {len(result.plots)} plot(s) under {plots_dir}" if result.plots else "no plots (no replay runs)")
    n_tables = len(result.board.tables)
    if n_tables > 1:
        console.print(f"{n_tables} tables in all (one page per suite, config and scenario under {Path(root) / 'board'}): "
                      f"start at {path} or {result.html}")
    if site is not None:
        console.print(f"wrote the static site (every page, plots, run files) to {site}: open {Path(site) / 'index.html'}")


data_app = typer.Typer(help="Benchmark data: build and inspect.", no_args_is_help=True)
rm_app = typer.Typer(help="Reward models: train the project's own, list the trained ones.", no_args_is_help=True)
pool_app = typer.Typer(help="The reward-model pool: train, score, report.", no_args_is_help=True)
offline_app = typer.Typer(help="BayesianRouter's offline stage: train and evaluate the offline router.", no_args_is_help=True)
app.add_typer(offline_app, name="offline")
app.add_typer(data_app, name="data")
app.add_typer(rm_app, name="rm")
app.add_typer(pool_app, name="pool")


@data_app.command("build")
def data_build(
    seed: int = typer.Option(0, "--seed", help="Benchmark seed (split assignment, pair construction)."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    benchmark: str = typer.Option("rmroute-pairs-v1", "--benchmark", help="A registered benchmark (a suite plugin of metadata kind \"benchmark\")."),
) -> None:
    """Build (or load from the cache) a benchmark (default rmroute-pairs-v1) and print counts per split and domain."""
    from rmroute.harness.core.plugins import create_benchmark

    counts = create_benchmark(benchmark, seed).summary()
    if as_json:
        print(json.dumps(counts, indent=2))
        return
    splits = counts["splits"]
    domains = sorted({d for per in splits.values() for d in per})
    table = Table(title=f"{benchmark}, seed {seed}")
    table.add_column("split")
    for d in domains + ["total"]:
        table.add_column(d, justify="right")
    for split, per in splits.items():
        table.add_row(split, *[str(per.get(d, 0)) for d in domains], str(sum(per.values())))
    console.print(table)


@rm_app.command("list")
def rm_list(
    cache: Optional[Path] = typer.Option(None, "--cache", help="Cache root to list (default $RMROUTE_CACHE, else ~/.cache/rmroute)."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the RMs pool builds trained into the cache ($RMROUTE_CACHE/rms/<pool>/<name>-<hash>/):
    pool, name, when, training summary, folder. A pool config refers to one by name with
    ``model: "trained:<name>@<pool>"`` (the newest of that name)."""
    import datetime

    from rmroute.harness.assets import cache_root
    from rmroute.harness.pipelines.pool import list_trained

    _use_cache(cache)
    rms = list_trained()
    if as_json:
        print(json.dumps([{**r.__dict__, "folder": str(r.folder), "ref": f"trained:{r.name}@{r.pool}"} for r in rms],
                         indent=2))
        return
    if not rms:
        console.print(f"no trained RMs under {cache_root() / 'rms'} (`rmroute pool build` trains a pool's `train` entries)",
                      markup=False, highlight=False)
        return
    rows = [("pool", "name", "trained (UTC)", "steps", "final loss", "val acc", "folder")]
    seen = set()
    for r in rms:
        when = datetime.datetime.fromtimestamp(r.when, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        older = (r.pool, r.name) in seen  # trained:<name>@<pool> takes the newest
        seen.add((r.pool, r.name))
        rows.append((r.pool, r.name + (" (older)" if older else ""), when, "-" if r.steps is None else str(r.steps),
                     "-" if r.final_loss is None else f"{r.final_loss:.4f}",
                     "-" if r.val_accuracy is None else f"{r.val_accuracy:.3f}", str(r.folder)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    print(f"trained RMs under {cache_root() / 'rms'} (refer to one as model: \"trained:<name>@<pool>\")")
    for row in rows:  # plain lines: a folder path is never cut to the terminal's width
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    for r in rms:
        if r.problem:
            err_console.print(r.problem, markup=False, highlight=False, soft_wrap=True)


@rm_app.command("train")
def rm_train(config: Path = typer.Argument(..., help="An RM training config (see configs/rm-train-example.yaml).")) -> None:
    """Fine-tune a sequence-classification RM with TRL's reward trainer."""
    from rmroute.harness.pipelines.rm_train import train_from_config

    report = train_from_config(config)
    console.print(report)


@pool_app.command("build")
def pool_build(
    config: Path = typer.Argument(Path("configs/pool-cpu.yaml"), help="A pool config."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP + " Trained RMs go to DIR/rms, scores to DIR/scores."),
    out: Path = typer.Option(Path("results/pool"), "--out", help="Where the report (JSON + Markdown) goes."),
) -> None:
    """Train the pool's RMs, score every benchmark pair once, and write the pool report (for a
    score-table pool: read the table and write its diagnostics)."""
    from rmroute.harness.pipelines.pool import build_pool, load_pool_config
    from rmroute.harness.pipelines.pool_report import pool_report, render_markdown, render_table_markdown, table_report
    from rmroute.harness.results import atomic_write_text

    _use_cache(cache)
    cfg = load_pool_config(config)
    pool = build_pool(cfg, None, log=lambda m: err_console.print(m, markup=False, highlight=False))
    if pool.table is not None:
        rep = table_report(pool)
        md = render_table_markdown(rep)
    else:
        rep = pool_report(pool)
        md = render_markdown(rep)
    atomic_write_text(out / f"{cfg.name}.json", json.dumps(rep, indent=2, default=float) + "\n")
    atomic_write_text(out / f"{cfg.name}.md", md)
    console.print(md, markup=False, highlight=False)
    console.print(f"wrote {out / (cfg.name + '.json')} and .md")


@offline_app.command("train")
def offline_train_cmd(
    config: Path = typer.Argument(Path("configs/offline-cpu.yaml"), help="An offline-router config."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP),
) -> None:
    """Train the offline router (one bundle per seed) on the pool's offline split."""
    from rmroute.harness.pipelines.offline import offline_train

    _use_cache(cache)
    summary = offline_train(config)
    console.print(f"bundles: {', '.join(s['bundle'] for s in summary['seeds'].values())}")
    t = summary["timings"]
    console.print(f"encoding {t['encode_total_s']:.1f} s, training {t['train_s']:.1f} s")


@offline_app.command("eval")
def offline_eval_cmd(
    config: Path = typer.Argument(Path("configs/offline-cpu.yaml"), help="An offline-router config."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=CACHE_HELP),
) -> None:
    """Routing accuracy on test: the offline router's argmax against single RMs, votes, ensembles, oracle."""
    from rmroute.harness.pipelines.offline import offline_eval

    _use_cache(cache)
    text = offline_eval(config, as_json=as_json)
    if as_json:
        print(text)
    else:
        console.print(text, markup=False, highlight=False)


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry point: one clear error line, no traceback unless --debug."""
    global _DEBUG
    args = list(sys.argv[1:] if argv is None else argv)
    _DEBUG = "--debug" in args
    try:
        app(args=args, prog_name="rmroute", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except TyperException as exc:  # usage errors: bad option, unknown command (typer's own click)
        exc.show()
        return getattr(exc, "exit_code", 2)
    except RmrouteError as exc:
        if _DEBUG:
            raise
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # an internal error: still one line unless --debug
        if _DEBUG:
            raise
        err_console.print(
            f"error: internal {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            markup=False, highlight=False, soft_wrap=True,
        )
        return 1
    finally:
        if _CACHE_BEFORE:  # a command's --cache holds for that command only
            from rmroute.harness.assets import set_cache_root

            set_cache_root(_CACHE_BEFORE[0])
            _CACHE_BEFORE.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
