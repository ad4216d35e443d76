"""Wall time of one training iteration: 1 process vs N data-parallel processes (accelerate), same config.

Writes a small train config (a tiny policy, two byte-level sequence-classifier RMs built from config,
so pairs never tie, ``generation_chunk`` set so both launches sample the same responses), runs it
once as one process and once under ``accelerate launch --multi_gpu --num_processes N`` (on a machine
without CUDA: N torchrun processes on CPU, gloo), and prints per phase the median over every
iteration of every run, with the ratio N-process / 1-process. A first, untimed launch fills the
score cache, so both timed launches read the RMs' scores from it. Each launch also reports its total
wall time (process start, model building, imports included).

    python benchmarks/train_data_parallel.py [--processes 2] [--iterations 4] [--batch-prompts 8]
        [--hidden 64] [--max-new-tokens 32] [--threads 1]

On CPU, give every process the same number of threads (``--threads``) and keep processes x threads
within the cores, or the comparison measures oversubscription.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHASES = ("generate", "featurize", "route", "score", "loss", "train", "feedback", "total")


def config(tmp: Path, args) -> Path:
    from tests.tiny_models import byte_seqcls

    data = {
        "kind": "train", "suite": "dp-bench", "seeds": [0], "routers": ["bayesian"],
        "reward_models": [{"name": "hf-seqcls", "label": f"rm-{k}",
                           "params": {"model": str(byte_seqcls(tmp / f"rm-{k}", k)), "device": "cpu"}} for k in (1, 2)],
        "featurizer": {"name": "pair-encoder", "params": {"model": "hash:16"}},
        "settings": {
            "policy": {"model": "tiny", "device": "cpu", "tiny": {"hidden_size": args.hidden, "intermediate_size": 2 * args.hidden}},
            "generator": {"name": "transformers", "params": {"max_new_tokens": args.max_new_tokens, "temperature": 1.0}},
            "prompts": {"domains": ["math", "chat"], "max_chars": 300},
            "iterations": args.iterations, "batch_prompts": args.batch_prompts, "samples_per_prompt": 2,
            "generation_chunk": max(1, args.batch_prompts // args.processes),
            "learning_rate": 1e-3, "offline_pairs": 30, "max_length": 512, "threads": args.threads,
            "score_cache": str(tmp / "scores"),
        },
    }
    path = tmp / "dp-bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def launch(cfg: Path, out: Path, processes: int) -> float:
    """Seconds for one launch (the same command line tests/test_train_dp.py runs)."""
    from tests.test_train_dp import launch as run_launch

    t0 = time.perf_counter()
    proc = run_launch(cfg, out, processes)
    if proc.returncode != 0:
        raise SystemExit(f"launch with {processes} process(es) failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0


def medians(out: Path) -> dict[str, float]:
    its = [it for p in sorted((out / "runs" / "dp-bench").glob("*.json"))
           for it in json.loads(p.read_text())["extra"]["iterations"]]
    return {ph: statistics.median(it["time"][ph] for it in its) for ph in PHASES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--batch-prompts", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = config(tmp, args)
        launch(cfg, tmp / "warm-up", 1)  # fills the score cache, so neither timed launch scores afresh
        wall1 = launch(cfg, tmp / "one", 1)
        walln = launch(cfg, tmp / "many", args.processes)
        one, many = medians(tmp / "one"), medians(tmp / "many")
    n = args.processes
    print(f"iteration phases, median seconds over {args.iterations} iterations "
          f"({args.batch_prompts} prompts x 2 samples, hidden {args.hidden}, {args.max_new_tokens} new tokens, "
          f"{args.threads} thread(s) per process)")
    print(f"| phase | 1 process | {n} processes | ratio {n}p/1p |")
    print("|---|---|---|---|")
    for ph in PHASES:
        ratio = many[ph] / one[ph] if one[ph] > 0 else float("nan")
        print(f"| {ph} | {one[ph]:.3f} | {many[ph]:.3f} | {ratio:.2f} |")
    print(f"| launch wall time | {wall1:.1f} | {walln:.1f} | {walln / wall1:.2f} |")


if __name__ == "__main__":
    main()
