"""The house rules, kept by reading the import graph (docs/architecture.md).

* no import cycle between modules (function-level imports count: a lazy import is still an arrow);
* no plugin package (routers, reward_models, suites, generators) imports another plugin package;
* the host (``rmroute.harness``) imports no plugin package: it reaches plugins through the registry;
* the host's floors (below) are imported downwards only, and a plugin package reaches at most the
  pipelines floor: it may use the host's core, infrastructure, routing and pipelines, never a
  runner, the board, the server or the CLI;
* no ``_private`` name is imported from another module;
* every import of the project's own code goes through the ``rmroute`` namespace.

The checker reads sources with :mod:`ast`; it is tested on small synthetic trees first, so that a
rule that could never fire would show up here. ``python -m tests.test_architecture`` prints the
figures quoted in the issue notes (largest module, folder sizes, cycles, imports by kind).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = ("routers", "reward_models", "suites", "generators")
HOST = "harness"
FOLDERS = (HOST, *PLUGIN_PACKAGES)
#: the host's floors (docs/architecture.md); a module is on the floor of its longest listed prefix
FLOORS = {
    "harness": 0, "harness.determinism": 0, "harness.core": 0,
    "harness.records": 1, "harness.integrity": 1, "harness.results": 1, "harness.assets": 1,
    "harness.devices": 1, "harness.net": 1, "harness.analysis": 1, "harness.progress": 1, "harness.paths": 1,
    "harness.routing": 2, "harness.tables": 2,
    "harness.pipelines": 3,
    "harness.runners": 4, "harness.board": 4, "harness.serve": 4, "harness.reference_slice": 4,
    "harness.cli": 5,
}
#: the highest host floor a plugin package may import
PLUGIN_CEILING = FLOORS["harness.pipelines"]


# ---- reading the graph ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "harness.runners.replay"
    target: str  # imported module of the project, e.g. "harness.core.config"
    names: tuple[str, ...]  # names taken with `from target import ...` ("" for `import target`)
    nested: bool  # inside a function or class body
    bare: bool  # written without the rmroute. prefix


@dataclass
class Graph:
    modules: dict[str, int] = field(default_factory=dict)  # module -> lines
    imports: list[Import] = field(default_factory=list)


def module_name(relative: str) -> str:
    name = relative[: -len(".py")].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def read_graph(sources: dict[str, str]) -> Graph:
    """``sources``: path relative to the tree root (``harness/cli.py``) -> text."""
    graph = Graph()
    for path, text in sources.items():
        graph.modules[module_name(path)] = text.count("\n") + 1
    known = set(graph.modules)

    def resolve(dotted: str) -> tuple[str | None, bool]:
        bare = not dotted.startswith("rmroute.") and dotted != "rmroute"
        name = dotted[len("rmroute."):] if not bare else dotted
        if dotted == "rmroute":
            return "rmroute", False
        while name and name not in known:
            name = name.rpartition(".")[0]
        return (name or None), bare

    for path, text in sources.items():
        source = module_name(path)
        tree = ast.parse(text, filename=path)
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                entries = [(alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = tuple(alias.name for alias in node.names)
                package, _ = resolve(node.module)
                # `from package import module` is an arrow to that module too
                modules = [n for n in names if package and f"{package}.{n}" in known]
                entries = [(node.module, tuple(n for n in names if n not in modules))]
                entries += [(f"{node.module}.{n}", ()) for n in modules]
            else:
                continue
            for dotted, names in entries:
                target, bare = resolve(dotted)
                if target is None or target == source:
                    continue
                graph.imports.append(Import(source, target, names, id(node) not in top, bare))
    return graph


def read_tree(root: Path = ROOT) -> Graph:
    sources = {}
    for folder in FOLDERS:
        for dirpath, _, files in os.walk(root / folder):
            for f in files:
                if f.endswith(".py"):
                    p = Path(dirpath) / f
                    sources[str(p.relative_to(root))] = p.read_text()
    if (root / "rmroute" / "__init__.py").exists():
        sources["rmroute/__init__.py"] = (root / "rmroute" / "__init__.py").read_text()
    return read_graph(sources)


# ---- the rules -----------------------------------------------------------------------------------


def package_of(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    edges: dict[str, set[str]] = {m: set() for m in graph.modules}
    for imp in graph.imports:
        edges.setdefault(imp.source, set()).add(imp.target)
        edges.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def floor(module: str) -> int | None:
    """The host floor of ``module`` (None outside the host; KeyError for a host module on no floor)."""
    if package_of(module) != HOST:
        return None
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in FLOORS and (i > 1 or module == HOST):
            return FLOORS[".".join(parts[:i])]
    raise KeyError(f"{module} is on no floor: add it to FLOORS in tests/test_architecture.py and docs/architecture.md")


def violations(graph: Graph) -> list[str]:
    problems = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for imp in graph.imports:
        src, dst = package_of(imp.source), package_of(imp.target)
        where = f"{imp.source} imports {imp.target}"
        if imp.bare:
            problems.append(f"{where} without the rmroute. prefix")
        if src in PLUGIN_PACKAGES and dst in PLUGIN_PACKAGES and src != dst:
            problems.append(f"{where}: a plugin package imports another plugin package")
        if src == HOST and dst in PLUGIN_PACKAGES:
            problems.append(f"{where}: the host reaches plugins through the registry, not by import")
        if src == HOST and dst == HOST and floor(imp.target) > floor(imp.source):
            problems.append(f"{where}: an upward import (floor {floor(imp.source)} -> {floor(imp.target)})")
        if src in PLUGIN_PACKAGES and dst == HOST and floor(imp.target) > PLUGIN_CEILING:
            problems.append(f"{where}: plugins may import the host up to its pipelines floor, not floor {floor(imp.target)}")
        for name in imp.names:
            if name.startswith("_") and not name.startswith("__"):
                problems.append(f"{where}: private name {name!r} used across modules")
    return problems


# ---- the checker can fail ------------------------------------------------------------------------


def _tree(**files: str) -> Graph:
    """Keyword = module path with ``__`` for ``/``; every package gets an empty ``__init__``."""
    sources = {path.replace("__", "/") + ".py": textwrap.dedent(text) for path, text in files.items()}
    for path in list(sources):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            sources.setdefault("/".join(parts[:i]) + "/__init__.py", "")
    return read_graph(sources)


def test_checker_finds_a_cycle_through_a_function_level_import():
    g = _tree(harness__runners__a="from rmroute.harness.runners.b import x\n",
              harness__runners__b="def f():\n    from rmroute.harness.runners import a\n")
    assert violations(g) == ["import cycle: harness.runners.a <-> harness.runners.b"]


def test_checker_finds_each_kind_of_violation():
    g = _tree(routers__r="from rmroute.suites.s import load\n",
              suites__s="load = 1\n",
              harness__pipelines__h="import rmroute.routers.r\n",
              harness__pipelines__k="from rmroute.harness.pipelines.h import _secret\n",
              harness__pipelines__old="from harness.pipelines.h import thing\n")
    found = violations(g)
    assert any("routers.r imports suites.s: a plugin package imports another" in p for p in found)
    assert any("harness.pipelines.h imports routers.r: the host reaches plugins through the registry" in p for p in found)
    assert any("private name '_secret'" in p for p in found)
    assert any("harness.pipelines.old imports harness.pipelines.h without the rmroute. prefix" in p for p in found)
    assert len(found) == 4, found


def test_checker_finds_upward_imports_and_plugins_reaching_too_high():
    g = _tree(harness__core__config="from rmroute.harness.results import slug\n",
              harness__results="slug = 1\n",
              suites__s="from rmroute.harness.runners.grid import Grid\n",
              harness__runners__grid="Grid = 1\n")
    found = violations(g)
    assert found == ["harness.core.config imports harness.results: an upward import (floor 0 -> 1)",
                     "suites.s imports harness.runners.grid: plugins may import the host up to its pipelines floor, not floor 4"], found


def test_every_host_module_is_on_a_floor():
    for module in read_tree().modules:
        floor(module)  # raises KeyError naming the module


def test_checker_accepts_a_clean_tree():
    g = _tree(harness__core__types="class Selection: ...\n",
              routers__base="from rmroute.harness.core.types import Selection\n",
              routers__plugin="from rmroute.routers import base\nfrom rmroute import hookimpl\n",
              harness__runners__replay="from rmroute.harness.core import types\n")
    assert violations(g) == []
    assert {(i.source, i.target) for i in g.imports} >= {("routers.plugin", "routers.base"),
                                                          ("harness.runners.replay", "harness.core.types")}


# ---- the rules hold on the tree ------------------------------------------------------------------


def test_the_tree_keeps_the_house_rules():
    problems = violations(read_tree())
    assert not problems, "\n".join(problems)


def test_pyproject_installs_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, mapping = set(config["packages"]), config["package-dir"]
    on_disk = {"rmroute"}
    for folder in FOLDERS:
        for dirpath, _, files in os.walk(ROOT / folder):
            if "__init__.py" in files and "__pycache__" not in dirpath:
                on_disk.add("rmroute." + str(Path(dirpath).relative_to(ROOT)).replace("/", "."))
    assert listed == on_disk, f"pyproject lists {sorted(listed ^ on_disk)} wrongly"
    assert {mapping[f"rmroute.{f}"] for f in FOLDERS} == set(FOLDERS)


def test_installs_next_to_distributions_that_own_harness_and_routers(tmp_path):
    """PyPI has packages called `harness`, `routers` and `generators`; rmroute must not clash."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((ROOT / name).read_bytes())
    for folder in (*FOLDERS, "rmroute"):
        subprocess.run(["cp", "-r", str(ROOT / folder), str(src / folder)], check=True)
    dummy = tmp_path / "dummy"
    for pkg in ("harness", "routers"):
        (dummy / pkg).mkdir(parents=True)
        (dummy / pkg / "__init__.py").write_text(f"OWNER = 'dummy-{pkg}'\n")
    (dummy / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "dummy-harness-routers"
        version = "1.0"
        [tool.setuptools]
        packages = ["harness", "routers"]
        """))
    target = tmp_path / "site"
    for project in (dummy, src):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(target), str(project)], check=True, capture_output=True)
    probe = textwrap.dedent("""\
        import harness, routers
        assert harness.OWNER == 'dummy-harness' and routers.OWNER == 'dummy-routers'
        import rmroute
        from rmroute import BaseRouter, Selection, hookimpl, check_router
        from rmroute.harness.core.plugins import build_registry
        assert rmroute.harness.__file__.startswith(TARGET), rmroute.harness.__file__
        registry = build_registry()
        assert not registry.failed, registry.failed
        assert {'bayesian', 'laser', 'random'} <= set(registry.names('router'))
        assert (Path(rmroute.suites.__file__).parent / 'tasks').is_dir()
        print('both import')
        """)
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", f"from pathlib import Path\nimport rmroute.suites\nTARGET = {str(target)!r}\n" + probe],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "both import"


def test_the_development_install_exposes_no_top_level_names(tmp_path):
    code = "import importlib.util as u; print([n for n in %r if u.find_spec(n)])" % (FOLDERS,)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- figures -------------------------------------------------------------------------------------


def _upward(graph: Graph) -> int | str:
    try:
        return sum(package_of(i.source) == package_of(i.target) == HOST and floor(i.target) > floor(i.source)
                   for i in graph.imports)
    except KeyError:
        return "n/a (a tree without these floors)"


def _count_violations(graph: Graph) -> int | str:
    try:
        return len(violations(graph))
    except KeyError:
        return "n/a (a tree without these floors)"


def figures(graph: Graph) -> dict[str, object]:
    largest = max(graph.modules.items(), key=lambda kv: kv[1])
    folders: Counter[str] = Counter()
    for module, lines in graph.modules.items():
        folders[module.rpartition(".")[0] if "." in module else module] += lines
    up = [i for i in graph.imports if package_of(i.source) == HOST and package_of(i.target) in PLUGIN_PACKAGES]
    return {
        "modules": len(graph.modules),
        "lines": sum(graph.modules.values()),
        "largest module": f"{largest[0]} ({largest[1]} lines)",
        "largest folder": "{} ({} lines)".format(*folders.most_common(1)[0]),
        "cycles": len(cycles(graph)),
        "host -> plugin imports": len(up),
        "upward imports": _upward(graph),
        "function-level imports": sum(i.nested for i in graph.imports),
        "function-level host -> host": sum(i.nested and package_of(i.source) == package_of(i.target) == HOST for i in graph.imports),
        "violations": _count_violations(graph),
    }


if __name__ == "__main__":
    for key, value in figures(read_tree(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)).items():
        print(f"{key}: {value}")
