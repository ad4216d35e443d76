"""Fixture routers for tests/test_ray_cluster.py, which reach Ray workers as an installed plugin
(the test writes an entry point for this module and puts it on the cluster's PYTHONPATH).

* ``node-log``: ``random``, and each instance appends ``<ray node id> <pid>`` to the file that
  ``RMROUTE_TEST_NODE_LOG`` names (``local`` outside Ray), so a test sees where its cells ran. With
  ``meet: N``, an instance in a Ray worker then waits (up to a minute) until the file names N Ray
  nodes: its cells must run at the same time on N nodes, which a cluster of one CPU per node and
  tasks of one CPU each can only do on N different nodes.
* ``die-once``: ``random``, except that on its second ``select`` the first instance to get there
  while ``RMROUTE_TEST_DIE_MARKER`` names a file that does not exist yet creates that file (with its
  node id and pid) and SIGKILLs its own process: a Ray worker killed mid-cell, exactly once.
"""

from __future__ import annotations

import os
import signal
import time

from rmroute import hookimpl
from rmroute.routers.simple import RandomRouter


def where() -> str:
    """``<ray node id> <pid>`` of this process (node ``local`` when it is not a Ray worker)."""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    except ImportError:
        node = "local"
    return f"{node} {os.getpid()}"


def ray_nodes(log: str) -> set[str]:
    """The Ray nodes named in the node log so far."""
    with open(log, encoding="utf-8") as fh:
        return {line.split()[0] for line in fh if line.strip()} - {"local"}


class NodeLog(RandomRouter):
    def __init__(self, n_arms, dim, seed=0, meet=1):
        super().__init__(n_arms, dim, seed)
        log = os.environ.get("RMROUTE_TEST_NODE_LOG")
        if not log:
            return
        here = where()
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(here + "\n")
        deadline = time.monotonic() + 60
        while not here.startswith("local") and len(ray_nodes(log)) < meet and time.monotonic() < deadline:
            time.sleep(0.1)


class DieOnce(RandomRouter):
    def __init__(self, n_arms, dim, seed=0):
        super().__init__(n_arms, dim, seed)
        self.selects = 0

    def _select(self, X, items):
        self.selects += 1
        marker = os.environ.get("RMROUTE_TEST_DIE_MARKER")
        if marker and self.selects == 2:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # only one process wins
            except FileExistsError:
                pass
            else:
                os.write(fd, (where() + "\n").encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return super()._select(X, items)


@hookimpl
def register_routers(register):
    register("node-log", NodeLog, description="random; logs the Ray node it runs on (tests)", calls_per_item=1,
             learns=False)
    register("die-once", DieOnce, description="random; kills its own process once, mid-run (tests)",
             calls_per_item=1, learns=False)
