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

from harness.errors import RmrouteError

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

    from harness.plugins import get_registry

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
    from harness.testing import check_entry

    failures = 0
    for kind, entries in registry.entries.items():
        for name, entry in sorted(entries.items()):
            status, detail = check_entry(entry)
            style = {"ok": "green", "fail": "red", "skip": "dim"}[status]
            console.print(f"[{style}]{status:4}[/{style}] {kind} {name}" + (f": {detail}" if detail else ""))
            failures += status == "fail"
    if failures:
        raise RmrouteError(f"{failures} plugin(s) failed the conformance checks")


@app.command()
def validate(config: Path = typer.Argument(..., help="A run config (YAML).")) -> None:
    """Check a config without running it."""
    from harness.config import config_sha256, load_config

    cfg = load_config(config)
    console.print(f"{config}: ok ({cfg.kind}, suite {cfg.suite!r}, config_sha256 {config_sha256(cfg)[:12]})")


@app.command()
def run(
    config: Path = typer.Argument(..., help="A run config (YAML)."),
    out: Path = typer.Option(Path("results"), "--out", help="Results root; run files go to OUT/runs/<suite>/."),
) -> None:
    """Run a config (replay, train or evaluate) and write one JSON per run."""
    from harness.config import load_config
    from harness.runners import run_config

    cfg = load_config(config)
    written = run_config(cfg, config, out)
    console.print(f"wrote {len(written)} run file(s) under {out / 'runs' / cfg.suite}")


@app.command()
def score(
    config: Path = typer.Argument(..., help="A config with `reward_models` and `data` (split -> source)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Score cache folder (default $RMROUTE_CACHE/scores)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score every (RM, prompt, response) of a config once into the score cache (resumable)."""
    from harness.config import load_config
    from harness.scoring import run_score

    summary = run_score(load_config(config), cache, show_progress=not as_json)
    if as_json:
        print(json.dumps({
            "n_pairs": summary.n_pairs, "failed": summary.failed, "accuracy": summary.accuracy,
            "reports": [r.__dict__ for r in summary.reports],
        }, indent=2))
        return
    table = Table(title=f"scored {summary.n_pairs} pairs")
    for col in ("rm", "items", "cached", "scored", "abstained", "items/s", "pair accuracy"):
        table.add_column(col)
    for r in summary.reports:
        rate = f"{r.scored / r.wall_s:,.1f}" if r.scored and r.wall_s > 0 else "-"
        acc = summary.accuracy.get(r.rm)
        table.add_row(r.rm, str(r.total), str(r.cached), str(r.scored), str(r.abstained), rate,
                      "-" if acc is None else f"{acc:.3f}")
    console.print(table)
    for r in summary.reports:
        for e in r.errors:
            err_console.print(f"[yellow]{r.rm}: {e}[/yellow]")
    for name, error in summary.failed:
        err_console.print(f"[red]{name}: could not be built: {error}[/red]")


@app.command("serve-rm")
def serve_rm(
    config: Path = typer.Argument(..., help="A serve config: reward_model, host, port, token_env, limits."),
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default from the config, else 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default from the config)."),
) -> None:
    """Serve a configured reward model over the OpenRLHF reward-server protocol (POST /get_reward)."""
    from reward_models.server import serve_from_config

    serve_from_config(config, host=host, port=port)


@app.command()
def leaderboard(root: Path = typer.Argument(Path("results"), help="Results root holding runs/.")) -> None:
    """Rebuild the leaderboard from the run JSON files."""
    from harness.leaderboard import build

    path, n_runs, n_skipped = build(root)
    console.print(f"wrote {path} from {n_runs} run(s)" + (f", skipped {n_skipped} unreadable file(s)" if n_skipped else ""))


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
