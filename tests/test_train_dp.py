"""Data-parallel training under accelerate: 2 CPU processes (gloo) train the runs one process trains.

Both launches run the same config through the CLI (``rmroute run``): one plain process, and
``accelerate launch --multi_gpu --num_processes 2`` (on a machine without CUDA this starts two torchrun
processes and rmroute sets up accelerate's gloo process group; accelerate 1.16's ``--cpu`` starts
one process unless given an MPI hostfile). ``generation_chunk: 1`` makes both sample the same
responses (one generate() call per prompt, seeded by its position).

What must agree: exactly, everything discrete (prompts, candidate pairs, kept pairs, RM calls per RM,
credited arms, fallbacks, skipped steps); to a tolerance, every loss, margin, normalised feedback and
the router's final posterior, which differ only by the order of floating-point sums (DDP averages
two block gradients; see rmroute.harness.runners.train.dist).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.tiny_models import byte_seqcls

pytest.importorskip("trl")
pytest.importorskip("accelerate")

BIN = Path(sys.executable).parent
# Float sums in another order (two blocks averaged by DDP vs one batch) differ in the last bits; Adam's
# first steps divide each gradient element by its own magnitude, which turns such differences in
# near-zero elements into differences of up to 2 x learning rate in that weight. With learning_rate
# 1e-3 over 3 steps the losses agree to ~5e-5 (measured); the tolerance leaves room for other CPUs.
RTOL, ATOL = 1e-3, 5e-4

CONFIG = {
    "kind": "train",
    "suite": "dp-test",
    "seeds": [0],
    "routers": ["bayesian", {"name": "laser", "params": {"mode": "per_item", "alpha": 0.1}}],
    "reward_models": [],  # two byte-level sequence classifiers with random weights: no pair ever ties
    "featurizer": {"name": "pair-encoder", "params": {"model": "hash:16"}},
    "settings": {
        "policy": {"model": "tiny", "device": "cpu", "tiny": {"hidden_size": 32, "intermediate_size": 64}},
        "generator": {"name": "transformers", "params": {"max_new_tokens": 16, "temperature": 1.0}},
        "prompts": {"domains": ["math", "chat"], "max_chars": 200},
        # 4 prompts x 2 samples: 4 pairs per iteration (the RMs never tie), blocks of 2 over 2 processes;
        # 4 generation chunks of one prompt, 2 per process
        "iterations": 3, "batch_prompts": 4, "samples_per_prompt": 2, "generation_chunk": 1,
        "learning_rate": 0.001, "offline_pairs": 30, "max_length": 512, "threads": 1,
        "lr_scheduler": "linear",
    },
}

DISCRETE = ("prompts", "pairs", "pairs_kept", "pairs_trained", "rm_calls", "calls_per_rm", "credited_share", "feedback_arms",
            "abstained", "fallbacks", "dpo_skipped")
CONTINUOUS = ("loss_before", "reward_margin", "dpo_loss", "pair_losses", "feedback")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", MASTER_PORT=str(_free_port()))
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cfg: Path, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    run = [str(BIN / "rmroute"), "run", str(cfg), "--out", str(out), "--no-leaderboard", *extra]
    if processes > 1:
        run = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()), *run]
    return subprocess.run(run, capture_output=True, text=True, env=_env(), timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def _runs(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "runs" / "dp-test").glob("*.json"))}


def _router_state(out: Path, run_id: str) -> dict:
    latest = out / "checkpoints" / "dp-test" / run_id / "latest.json"
    folder = latest.parent / json.loads(latest.read_text())["folder"]
    return pickle.loads((folder / "state.pkl").read_bytes())["router"]


def _close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple, np.ndarray)) and not isinstance(a, str):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, where
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=where)
        else:
            assert np.array_equal(a, b), where
    elif isinstance(a, float):
        assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=RTOL, abs=ATOL), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp")
    data = json.loads(json.dumps(CONFIG))
    data["reward_models"] = [{"name": "hf-seqcls", "label": f"rm-{k}", "params": {"model": str(byte_seqcls(tmp / f"rm-{k}", k)),
                                                                                  "device": "cpu"}}
                             for k in (1, 2)]
    data["settings"]["score_cache"] = str(tmp / "scores")
    cfg = tmp / "dp.yaml"
    cfg.write_text(yaml.safe_dump(data))
    _ok(launch(cfg, tmp / "one", 1))
    two = launch(cfg, tmp / "two", 2)
    _ok(two)
    return cfg, tmp, two


def test_two_processes_train_what_one_process_trains(launches):
    cfg, tmp, two = launches
    one_runs, two_runs = _runs(tmp / "one"), _runs(tmp / "two")
    assert sorted(one_runs) == sorted(two_runs) and len(one_runs) == 2
    for name, a in one_runs.items():
        b = two_runs[name]
        assert a["status"] == b["status"] == "ok", (name, a.get("error"), b.get("error"))
        assert len(a["extra"]["iterations"]) == 3
        for ia, ib in zip(a["extra"]["iterations"], b["extra"]["iterations"]):
            where = f"{name} iteration {ia['iteration']}"
            for key in DISCRETE:
                assert ia[key] == ib[key], f"{where}: {key}"
            for key in CONTINUOUS:
                _close(ia[key], ib[key], f"{where}: {key}")
            assert ia["pairs_trained"] == ia["pairs_kept"] == 4, where  # every pair trained: the same step
        for key, value in a["metrics"].items():
            _close(value, b["metrics"][key], f"{name}: metrics.{key}")
        _close(_router_state(tmp / "one", a["run_id"]), _router_state(tmp / "two", b["run_id"]), f"{name}: router state")
    # and the launch really was two processes: rank 0 alone wrote the runs and logged the iterations
    assert two.stderr.count("[train] bayesian s0 it0:") == 1


def test_two_processes_resume_from_any_iteration(launches):
    """A 2-process launch stopped after iteration 1, then resumed with --resume, ends where an
    uninterrupted 2-process launch ends."""
    cfg, tmp, _ = launches
    stopped = launch(cfg, tmp / "resumed", 2, "--stop-after", "1")
    assert stopped.returncode != 0 and "stopped after iteration 1" in stopped.stdout + stopped.stderr
    assert not _runs(tmp / "resumed")  # killed runs write no run file; their checkpoints stay
    resumed = launch(cfg, tmp / "resumed", 2, "--resume")
    _ok(resumed)
    assert "resumed after iteration 1" in resumed.stderr
    full, again = _runs(tmp / "two"), _runs(tmp / "resumed")
    assert sorted(full) == sorted(again)
    for name, a in full.items():
        b = again[name]
        assert b["status"] == "ok"
        for ia, ib in zip(a["extra"]["iterations"], b["extra"]["iterations"]):
            for key in DISCRETE:
                assert ia[key] == ib[key], f"{name} iteration {ia['iteration']}: {key}"
            for key in CONTINUOUS:
                _close(ia[key], ib[key], f"{name} iteration {ia['iteration']}: {key}")
        _close(_router_state(tmp / "two", a["run_id"]), _router_state(tmp / "resumed", b["run_id"]), f"{name}: router")


def test_other_kinds_refuse_a_multi_process_launch(tmp_path, monkeypatch, capsys):
    from rmroute.harness.cli import main
    from tests.conftest import REPO

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", str(REPO / "configs" / "quickstart.yaml"), "--out", str(tmp_path), "--no-leaderboard"]) != 0
    err = capsys.readouterr().err
    assert "only train configs run data-parallel" in err and "quickstart.yaml (kind: replay)" in err


# ---- the pieces, in one process --------------------------------------------------------------------
@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (5, 2), (7, 3), (8, 4), (3, 1)])
def test_blocks_are_numpys_array_split(n, world):
    from rmroute.harness.runners.train.dist import Dist, PairFeed

    want = [list(b) for b in np.array_split(np.arange(n), world)]
    assert [list(Dist(rank=0, world=world).blocks(n)[k]) for k in range(world)] == want
    assert [list(Dist(rank=k, world=world).mine(n)) for k in range(world)] == want
    feed = PairFeed(Dist(rank=0, world=world))
    feed.set([f"p{i}" for i in range(n)], [f"c{i}" for i in range(n)], [f"r{i}" for i in range(n)])
    shards = [[row["prompt"] for row in feed.rows([k])] for k in range(world)]
    assert shards == [[f"p{i}" for i in b] for b in want]  # shard k is block k, in pair order


def test_generation_chunks_are_seeded_by_position_and_dealt_round_robin():
    """Chunk j of an iteration gets the seed of (run seed, iteration, j) whatever the process count;
    chunk 0 keeps the one-call seed of earlier versions; the samples come back in prompt order."""
    from types import SimpleNamespace

    from rmroute.harness.determinism import derived_rng
    from rmroute.harness.runners.train.dist import Dist
    from rmroute.harness.runners.train.loop import generate_batch, generation_seed

    calls = []

    class Recorder:
        def generate(self, prompts, n, seed):
            calls.append((list(prompts), seed))
            return [[f"{p}/{k}" for k in range(n)] for p in prompts]

    assert generation_seed(3, 5, 0) == int(np.random.default_rng([3, 5, 11]).integers(0, 2**31 - 1))
    assert generation_seed(3, 5, 2) == int(np.random.default_rng([3, 5, 2, 13]).integers(0, 2**31 - 1))
    assert generation_seed(3, 5, 2) == int(derived_rng(3, "train-generation-chunk", 5, 2).integers(0, 2**31 - 1))
    prompts = [f"q{i}" for i in range(5)]
    env = SimpleNamespace(settings=SimpleNamespace(generation_chunk=2, samples_per_prompt=2))
    run = SimpleNamespace(dist=Dist(), generator=Recorder(), seed=3)
    out = generate_batch(env, run, prompts, 5)
    assert calls == [(["q0", "q1"], generation_seed(3, 5, 0)), (["q2", "q3"], generation_seed(3, 5, 1)),
                     (["q4"], generation_seed(3, 5, 2))]
    assert out == [[f"q{i}/0", f"q{i}/1"] for i in range(5)]
    calls.clear()
    env.settings.generation_chunk = None  # one process, no chunk size: one call, the old seed
    generate_batch(env, run, prompts, 5)
    assert calls == [(prompts, generation_seed(3, 5, 0))]
