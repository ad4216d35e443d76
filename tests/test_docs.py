"""The docs name code that exists: every `rmroute.x.y[.name]` in docs/*.md and README.md resolves.

A dotted name written in backticks (inline code or a fenced block) is imported: the longest
prefix that is a module, then attributes (pydantic fields and dataclass fields count as
attributes). A repository path in backticks (``harness/routing.py``, ``docs/data.md``) must exist.
A failure names the file and line, so a rename that leaves a doc behind fails here. The
extractor and the resolver are tested on small synthetic texts first, so that a check that could
never fire would show up here.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

DOTTED = re.compile(r"(?<![\w.])rmroute(?:\.[A-Za-z_]\w*)+")
#: a file of the repository, as docs cite it: a top-level folder, then a path (``*`` globs allowed)
#: ending in a suffix; placeholders such as ``runs/<suite>/`` are not paths
PATH = re.compile(r"(?<![\w./-])((?:harness|routers|reward_models|suites|generators|docs|tests|examples|configs|"
                  r"benchmarks|results|rmroute)/[\w./*-]*\.(?:py|md|yaml|toml|json|html))(?![\w<])")
INLINE = re.compile(r"`([^`]+)`")
FENCE = re.compile(r"^\s*(```|~~~)")


def code_spans(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every inline code span and every line inside a fenced block."""
    spans, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            spans.append((n, line))
        else:
            spans.extend((n, m.group(1)) for m in INLINE.finditer(line))
    return spans


def references(text: str) -> list[tuple[int, str, str]]:
    """(line, "name" | "path", what) of every dotted rmroute name and repository path in code."""
    out = []
    for n, code in code_spans(text):
        out.extend((n, "name", m.group(0)) for m in DOTTED.finditer(code))
        out.extend((n, "path", m.group(1)) for m in PATH.finditer(code))
    return out


def _has(obj: object, attr: str) -> bool:
    if hasattr(obj, attr):
        return True
    fields = getattr(obj, "model_fields", None)  # a pydantic model's fields are not class attributes
    if isinstance(fields, dict) and attr in fields:
        return True
    if dataclasses.is_dataclass(obj) and attr in {f.name for f in dataclasses.fields(obj)}:
        return True
    return attr in getattr(obj, "__annotations__", {})


def unresolved(name: str) -> str | None:
    """Why the dotted ``name`` does not resolve, or None when it does."""
    parts = name.split(".")
    module, i, last_error = None, len(parts), ""
    while i > 0:
        try:
            module = importlib.import_module(".".join(parts[:i]))
            break
        except ModuleNotFoundError as exc:
            if exc.name is None or not ".".join(parts[:i]).startswith(exc.name):
                return f"importing {'.'.join(parts[:i])} fails: {exc}"  # a real module with a missing dependency
            last_error = str(exc)
            i -= 1
    if module is None:
        return last_error or "no module"
    obj = module
    for j in range(i, len(parts)):
        if not _has(obj, parts[j]):
            return f"{'.'.join(parts[:j])} has no {parts[j]!r}"
        obj = getattr(obj, parts[j], None)
    return None


def problems(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root) if path.is_relative_to(root) else path
    out = []
    for n, what, ref in references(path.read_text(encoding="utf-8")):
        if what == "name":
            why = unresolved(ref)
            if why:
                out.append(f"{rel}:{n}: `{ref}` does not resolve ({why})")
        elif not (any(root.glob(ref)) if "*" in ref else (root / ref).exists()):
            out.append(f"{rel}:{n}: `{ref}` is not a file of the repository")
    return out


# ---- the checker on synthetic texts ---------------------------------------------------------------
def test_references_are_read_from_inline_code_and_fenced_blocks_only():
    text = "\n".join([
        "Prose rmroute.harness.nowhere is not code.",
        "Call `rmroute.harness.core.plugins.create(\"router\", ...)` or `rmroute.harness.routing`.",
        "```python",
        "from rmroute.harness.core.testing import check_router",
        "x = rmroute.harness.assets.cache_root()",
        "```",
        "See `harness/routing.py` and `docs/<x>.md`, not harness/nowhere.py; `configs/pool-*.yaml`.",
    ])
    assert references(text) == [
        (2, "name", "rmroute.harness.core.plugins.create"),
        (2, "name", "rmroute.harness.routing"),
        (4, "name", "rmroute.harness.core.testing"),
        (5, "name", "rmroute.harness.assets.cache_root"),
        (7, "path", "harness/routing.py"),
        (7, "path", "configs/pool-*.yaml"),
    ]


@pytest.mark.parametrize("name", [
    "rmroute.harness.routing", "rmroute.harness.routing.build_chain", "rmroute.harness.core.config.RunConfig.suite",
    "rmroute.harness.runners.grid.Cell.scenario", "rmroute.harness.core.plugins.Registry.get",
])
def test_names_that_exist_resolve(name):
    assert unresolved(name) is None


@pytest.mark.parametrize("name, why", [
    ("rmroute.harness.leaderboard", "rmroute.harness has no 'leaderboard'"),
    ("rmroute.harness.routing.no_such_thing", "rmroute.harness.routing has no 'no_such_thing'"),
    ("rmroute.harness.core.config.RunConfig.no_field", "RunConfig has no 'no_field'"),
    ("rmroute.routers.normalize.build_chain", "rmroute.routers.normalize has no 'build_chain'"),
])
def test_names_that_do_not_exist_are_reported(name, why):
    assert why in (unresolved(name) or "")


def test_a_stale_doc_fails_naming_file_and_line(tmp_path):
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "real.py").write_text("")
    doc = tmp_path / "stale.md"
    doc.write_text("ok: `harness/real.py`, `harness/re*.py`, `rmroute.harness.routing.route`\n\n"
                   "gone: `harness/leaderboard*.py` and `rmroute.harness.core.config.load_config`\n")
    assert problems(doc, tmp_path) == [
        "stale.md:3: `harness/leaderboard*.py` is not a file of the repository",
        "stale.md:3: `rmroute.harness.core.config.load_config` does not resolve "
        "(rmroute.harness.core.config has no 'load_config')",
    ]


# ---- the docs themselves ---------------------------------------------------------------------------
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_name_and_path_in_the_docs_exists(doc):
    found = problems(doc)
    assert not found, "\n".join(found)


def test_the_docs_cite_code_at_all():
    """The check reads something: the docs name a fair number of modules and files."""
    refs = [r for doc in DOCS for r in references(doc.read_text(encoding="utf-8"))]
    assert sum(kind == "name" for _, kind, _ in refs) > 50 and sum(kind == "path" for _, kind, _ in refs) > 20
