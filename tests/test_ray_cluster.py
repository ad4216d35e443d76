"""`--executor ray --ray-address` on a real two-node Ray cluster on this machine.

A module fixture starts a head node and a second node (`ray start --head` / `ray start --address`,
one CPU each, their own temp dirs and free ports, dashboard off) and tears both down after, by
process group and by a tag in their environment, so it kills only the processes it started. Each
test runs `rmroute run` in a subprocess (a driver separate from the cluster) once with `--executor
local` and once with `--executor ray --ray-address`, and compares the run files whole, less the
fields listed in :data:`VOLATILE`.

Ray workers are fresh Python processes, so the test-only routers of
``tests/plugins/fixture_ray_probe.py`` reach them as an installed plugin: the fixture writes an
entry point (a ``.dist-info`` folder) for that module and puts it on the PYTHONPATH the nodes and
drivers start with. ``node-log`` records the Ray node each cell ran on; ``die-once`` SIGKILLs its
worker mid-cell once (when ``RMROUTE_TEST_DIE_MARKER`` names a file not there yet), and Ray's retry
must leave every run file present once, ok and equal to the local executor's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray", reason="Ray is the `distributed` extra; `make test` installs it")

from tests.test_table_pool import write_table  # noqa: E402
from tests.test_train import BASE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"
BIN = Path(sys.executable).parent  # the venv's `ray` and `rmroute`
TAG = "RMROUTE_RAY_TEST_CLUSTER"  # in the environment of every process the fixture starts: "<pytest pid>-<n>"

#: Run-file fields that differ between two runs of the same cell, whatever the executor. Every
#: other field must be equal. Paths are (key, key, ...) into the run JSON; "*" is every list item.
VOLATILE = {
    ("wall_s",): "the cell's wall time",
    ("created",): "when the file was written",
    ("extra", "iterations", "*", "time"): "train: each iteration's stage wall times",
    ("extra", "curves", "time"): "train: the same wall times as curves",
}
# Paths under each run's own --out folder (the `command` that reproduces it, a train run's
# checkpoint) are compared with that folder written as "<out>".


# ---- the cluster ------------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing listens on now (held open together, so the kernel gives distinct ones)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tagged_pids(accept) -> list[int]:
    """Pids of this user's processes whose environment holds ``TAG=<value>`` with ``accept(value)``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # another user's process, or gone
            continue
        for item in environ:
            if item.startswith(TAG.encode() + b"=") and accept(item.split(b"=", 1)[1].decode()):
                pids.append(int(proc.name))
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Cluster:
    address: str  # the head's GCS, for --ray-address
    env: dict[str, str]  # what the nodes run with; drivers get the same
    root: Path
    node_log: Path  # RMROUTE_TEST_NODE_LOG: where node-log routers write their node ids
    die_marker: Path  # RMROUTE_TEST_DIE_MARKER: die-once kills its process while this file is absent


def _write_entry_point(site: Path) -> None:
    """An installed-distribution record whose entry point (group ``rmroute``) is fixture_ray_probe."""
    info = site / "rmroute_test_ray_probe-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rmroute-test-ray-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[rmroute]\nray-probe = fixture_ray_probe\n")


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`ray start ... --block` in its own process group; returns once it says the runtime started."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN / "ray"), "start", "--block", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while b"Ray runtime started" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"`ray start {' '.join(args)}` did not start; its log {log}:\n"
                               + log.read_text(errors="replace")[-3000:])
        time.sleep(0.2)
    return proc


def _node_args(temp: Path, p: list[int]) -> list[str]:
    """One node's options: its temp dir, one CPU, and 20 ports ``p`` (free, none Ray's defaults:
    another Ray may run on this machine)."""
    return ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--temp-dir", str(temp),
            "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]),
            "--dashboard-agent-listen-port", str(p[2]), "--dashboard-agent-grpc-port", str(p[3]),
            "--runtime-env-agent-port", str(p[4]), "--metrics-export-port", str(p[5]),
            "--worker-port-list", ",".join(map(str, p[6:])), "--disable-usage-stats"]


WAIT_FOR_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + 60
while sum(n["Alive"] for n in ray.nodes()) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
print(sum(n["Alive"] for n in ray.nodes()))
"""


@pytest.fixture(scope="module")
def cluster():
    # processes a killed earlier session of these tests left (its pytest is gone): ours, so end them
    _kill(_tagged_pids(lambda v: v.split("-")[0].isdigit() and not _alive(int(v.split("-")[0]))))
    # a short root: Ray's socket paths under the temp dir must fit in 107 characters
    root = Path(tempfile.mkdtemp(prefix="rmr-ray-", dir="/tmp"))
    tag = f"{os.getpid()}-{root.name}"
    _write_entry_point(root / "site")
    env = {k: v for k, v in os.environ.items() if k not in ("RMROUTE_PLUGINS", "RMROUTE_DISABLE_PLUGINS", "RAY_ADDRESS")}
    # a Ray worker inherits its node's environment, not the driver's: the fixture routers' files are set here
    env.update({"RMROUTE_TEST_NODE_LOG": str(root / "nodes.log"), "RMROUTE_TEST_DIE_MARKER": str(root / "killed")})
    env.update({TAG: tag, "PYTHONPATH": os.pathsep.join([str(root / "site"), str(PLUGINS)]),
                # token auth with a token of this cluster's own: Ray 2.60 turns it on for a head when
                # ~/.ray/auth_token exists (a local ray.init() writes one) but not for a joining node
                "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    procs: list[subprocess.Popen] = []
    try:
        ports = free_ports(42)  # at once, so all distinct
        gcs, dashboard = ports[:2]
        procs.append(_start_node(["--head", "--port", str(gcs), "--include-dashboard", "false",
                                  "--dashboard-port", str(dashboard), *_node_args(root / "head", ports[2:22])],
                                 env, root / "head.log"))
        address = f"127.0.0.1:{gcs}"
        procs.append(_start_node(["--address", address, *_node_args(root / "node2", ports[22:])], env,
                                 root / "node2.log"))
        alive = subprocess.run([sys.executable, "-c", WAIT_FOR_NODES, address], env=env, capture_output=True,
                               text=True, timeout=120)
        assert alive.stdout.strip() == "2", f"the cluster did not report 2 alive nodes: {alive.stdout}{alive.stderr[-2000:]}"
        yield Cluster(address, env, root, root / "nodes.log", root / "killed")
    finally:
        for proc in reversed(procs):  # the second node, then the head, each with what it started
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        _kill(_tagged_pids(lambda v: v == tag))  # anything of ours that left the process groups
        shutil.rmtree(root, ignore_errors=True)


# ---- running and comparing -------------------------------------------------------------------

def rmroute_run(cluster: Cluster, config: Path, out: Path, executor: str) -> None:
    """`rmroute run CONFIG --out OUT --no-leaderboard --executor EXECUTOR` as its own process (with
    the cluster's environment; under ``local`` without the die marker: nothing is killed there)."""
    cmd = [str(BIN / "rmroute"), "run", str(config), "--out", str(out), "--no-leaderboard", "--executor", executor]
    env = dict(cluster.env)
    if executor == "ray":
        cmd += ["--ray-address", cluster.address]
    else:
        del env["RMROUTE_TEST_DIE_MARKER"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=config.parent, capture_output=True, text=True, timeout=600)
    print(f"rmroute run {config.name} --executor {executor}: {time.perf_counter() - t0:.1f} s")  # shown with -s
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def comparable(record: dict, out: Path) -> dict:
    """``record`` less the :data:`VOLATILE` fields, with its --out folder ``out`` written as ``<out>``."""
    def drop(node, path):
        if not isinstance(node, (dict, list)):
            return
        head, rest = path[0], path[1:]
        children = node if head == "*" else ([node[head]] if isinstance(node, dict) and head in node else [])
        if not rest:
            if isinstance(node, dict):
                node.pop(head, None)
            return
        for child in children:
            drop(child, rest)

    record = json.loads(json.dumps(record).replace(json.dumps(str(out))[1:-1], "<out>"))
    for path in VOLATILE:
        drop(record, path)
    return record


def run_files(out: Path, suite: str) -> dict[str, dict]:
    """Every file in ``out/runs/<suite>/`` (all must be run JSONs), by name."""
    folder = out / "runs" / suite
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.iterdir())}


def assert_same_runs(local: Path, distributed: Path, suite: str, expected: int) -> dict[str, dict]:
    a, b = run_files(local, suite), run_files(distributed, suite)
    assert len(a) == expected and sorted(a) == sorted(b), (sorted(a), sorted(b))
    for name in a:
        assert a[name]["status"] == b[name]["status"] == "ok", (name, a[name]["error"], b[name]["error"])
        assert comparable(a[name], local) == comparable(b[name], distributed), name
    return b


# ---- the tests --------------------------------------------------------------------------------

def test_a_task_that_failed_for_good_loses_no_other():
    """grid.ray_results on Ray's own error types (no cluster: Ray raises these from ``ray.get`` once
    a task's worker died more than RAY_MAX_RETRIES times, or when the task raised)."""
    from rmroute.harness.runners import grid

    class RayGet:  # what ray_results uses of the ray module: get() and the exception types
        exceptions = ray.exceptions

        @staticmethod
        def get(ref):
            if isinstance(ref, BaseException):
                raise ref
            return ref

    raised = ray.exceptions.RayTaskError("_run_cell", "Traceback ...", ValueError("bad cell"))
    got = list(grid.ray_results(RayGet, ["a", ray.exceptions.WorkerCrashedError(), raised, "d"]))
    assert [value for value, _ in got] == ["a", None, None, "d"]
    assert got[0][1] is None and got[3][1] is None
    assert got[1][1].startswith("WorkerCrashedError: ") and f"up to {grid.RAY_MAX_RETRIES} times" in got[1][1]
    assert got[2][1] == "ValueError: bad cell"


REPLAY = """kind: replay
suite: ray-replay
seeds: [0, 1]
featurizer: {{name: pair-encoder, params: {{model: "hash:16"}}}}
routers:
  - {first}
  - {{name: single, params: {{arm: all}}}}
  - bayesian-online
  - majority-vote
settings:
  pool: {pool}
  folds: 2
  batch_size: 8
  scenarios: {{iid: {{}}, shift: {{order: domain_blocks}}}}
"""


def _replay_config(tmp: Path, first: str) -> Path:
    write_table(tmp / "toy.jsonl")
    (tmp / "pool.yaml").write_text(f"name: toy-pool\ntable:\n  file: {tmp / 'toy.jsonl'}\n")
    path = tmp / "replay.yaml"
    path.write_text(REPLAY.format(first=first, pool=tmp / "pool.yaml"))
    return path


def ray_nodes(cluster: Cluster) -> set[str]:
    """The Ray nodes node-log routers ran on since the log was last cleared (the driver, which
    builds each router once to check it, writes ``local``: left out)."""
    lines = cluster.node_log.read_text().splitlines() if cluster.node_log.exists() else []
    return {line.split()[0] for line in lines} - {"local"}


def test_replay_grid_on_two_nodes_matches_local(cluster, tmp_path):
    config = _replay_config(tmp_path, "{name: node-log, params: {meet: 2}}")
    rmroute_run(cluster, config, tmp_path / "local", "local")
    cluster.node_log.unlink(missing_ok=True)
    rmroute_run(cluster, config, tmp_path / "ray", "ray")
    assert_same_runs(tmp_path / "local", tmp_path / "ray", "ray-replay", expected=(1 + 3 + 2) * 2 * 2)
    assert len(ray_nodes(cluster)) == 2  # node-log's 4 cells ran on both nodes (`meet: 2` made them overlap)


def test_replay_cell_whose_worker_is_killed_is_retried(cluster, tmp_path):
    config = _replay_config(tmp_path, "die-once")
    rmroute_run(cluster, config, tmp_path / "local", "local")
    cluster.die_marker.unlink(missing_ok=True)
    rmroute_run(cluster, config, tmp_path / "ray", "ray")
    assert cluster.die_marker.read_text().split()[0] != "local"  # a Ray worker killed itself, not the driver
    assert_same_runs(tmp_path / "local", tmp_path / "ray", "ray-replay", expected=(1 + 3 + 2) * 2 * 2)


def _train_config(tmp: Path, routers: list, iterations: int) -> Path:
    data = json.loads(json.dumps(BASE))
    data.update(suite="ray-train", routers=routers)
    data["settings"].update(iterations=iterations, batch_prompts=1, score_cache=str(tmp / "scores"))
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_train_grid_on_two_nodes_matches_local_and_a_killed_worker_is_retried(cluster, tmp_path):
    """Two (router, seed) tasks, one per node. die-once kills its worker in iteration 2, after
    iteration 1's checkpoint was written: Ray's retry trains again from the start (no --resume),
    replacing that checkpoint, and both runs equal the uninterrupted local ones. (One test for both
    claims: a train grid costs ~25 s per executor here.)"""
    config = _train_config(tmp_path, ["die-once", "node-log"], iterations=2)
    rmroute_run(cluster, config, tmp_path / "local", "local")
    cluster.node_log.unlink(missing_ok=True)
    cluster.die_marker.unlink(missing_ok=True)
    rmroute_run(cluster, config, tmp_path / "ray", "ray")
    assert cluster.die_marker.read_text().split()[0] != "local"  # a Ray worker killed itself
    assert len(ray_nodes(cluster)) == 1  # node-log's run, in a Ray worker
    runs = assert_same_runs(tmp_path / "local", tmp_path / "ray", "ray-train", expected=2)
    assert all(r["metrics"]["iterations"] == 2 for r in runs.values())
