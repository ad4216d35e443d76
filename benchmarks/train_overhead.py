"""Share of a training iteration's wall time spent in routing and feedback (goal: under 2%).

Runs ``configs/train-tiny.yaml`` (or ``--config``) into a temporary folder, or reads the run JSONs of
an earlier run (``--runs DIR``), and prints one row per router: medians over its iterations of the
wall time of each phase and of

    overhead = (route + feedback) / total       route = select + fallback + combine
                                                feedback = normalizer chain + router.update

``featurize`` (the context encoder) and ``loss`` (the per-pair DPO loss under the updated policy,
which the feedback needs) are shown separately: they are model forward passes, not router work.

    python benchmarks/train_overhead.py [--config configs/train-tiny.yaml] [--runs results/runs/train-tiny]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

PHASES = ("generate", "featurize", "route", "score", "train", "loss", "feedback", "total")


def load_iterations(runs_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in sorted(runs_dir.glob("*.json")):
        rec = json.loads(path.read_text())
        if rec.get("kind") == "train" and rec.get("status") == "ok":
            out[rec["router"]["label"] or rec["router"]["name"]] = rec["extra"]["iterations"]
    return out


def table(iterations: dict[str, list[dict]]) -> str:
    head = "| router | " + " | ".join(f"{p} ms" for p in PHASES) + " | route+feedback share |"
    lines = [head, "|" + "---|" * (len(PHASES) + 2)]
    shares = []
    for label, its in iterations.items():
        med = {p: statistics.median(i["time"][p] for i in its) * 1000 for p in PHASES}
        share = statistics.median((i["time"]["route"] + i["time"]["feedback"]) / i["time"]["total"] for i in its)
        shares.append(share)
        lines.append(f"| {label} | " + " | ".join(f"{med[p]:.1f}" for p in PHASES) + f" | {100 * share:.2f}% |")
    if shares:
        lines.append(f"\nmedian over routers: {100 * statistics.median(shares):.2f}% of iteration wall time "
                     f"in routing + feedback (max {100 * max(shares):.2f}%)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train-tiny.yaml")
    ap.add_argument("--runs", type=Path, help="read run JSONs from this folder instead of training")
    args = ap.parse_args()
    if args.runs is None:
        from rmroute.harness.runners import load_config
        from rmroute.harness.runners.train.runner import run

        cfg = load_config(args.config)
        out = Path(tempfile.mkdtemp(prefix="train-overhead-"))
        run(cfg, args.config, out)
        args.runs = out / "runs" / cfg.suite
    print(table(load_iterations(args.runs)))


if __name__ == "__main__":
    main()
