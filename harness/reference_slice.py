"""A small slice of the published pipeline whose hashes are committed: the cross-machine check.

The committed replay runs depend on two computed artefacts that moved between machines before
rmroute pinned one CPU code path (:mod:`rmroute.harness.determinism`): the pair features of the offline
router's encoder and the offline bundle trained on them. This module recomputes a small slice of
each, exactly as the pipeline computes them (the encoder of ``configs/offline-cpu.yaml`` through
the featurizer, then ``train_offline_router``), and hashes the results:

    python -m rmroute.harness.reference_slice            # print the hashes and compare with the committed ones
    python -m rmroute.harness.reference_slice --write    # (re)write results/reference-hashes.json

``tests/test_determinism.py`` runs the comparison on every CI machine. The texts and margins are
generated here from integers (no data download, no float randomness), so only the computation can
make a hash differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rmroute.harness.core.plugins import create_ref
from rmroute.harness.determinism import arrays_sha256, describe
from rmroute.harness.pipelines.offline import load_offline_config, train_settings
from rmroute.harness.pipelines.offline_model import train_offline_router
from rmroute.harness.results import atomic_write_text

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "reference-hashes.json"
OFFLINE_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "offline-cpu.yaml"
N_PAIRS = 48
N_ARMS = 3
WORDS = ("the", "answer", "is", "because", "seven", "apples", "proof", "python", "list", "we", "sum",
         "therefore", "ocean", "blue", "train", "leaves", "at", "noon", "cost", "twelve", "dollars")


def slice_texts() -> tuple[list[str], list[str], list[str]]:
    """48 (prompt, A, B) triples of varied length (several encoder batches, padding exercised)."""
    def words(i: int, n: int) -> str:
        return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n))

    prompts = [f"Question {i}: {words(i, 3 + i % 9)}?" for i in range(N_PAIRS)]
    a = [words(i + 1, 2 + (i * 5) % 23) + "." for i in range(N_PAIRS)]
    b = [words(i + 2, 1 + (i * 11) % 31) + "!" for i in range(N_PAIRS)]
    return prompts, a, b


def slice_labels() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer-valued margins (N, K), gold signs and domains, from integer arithmetic only."""
    i = np.arange(N_PAIRS)[:, None]
    k = np.arange(N_ARMS)[None, :]
    margins = (((i * 7 + k * 5) % 9) - 4).astype(np.float64)
    gold = np.where(i[:, 0] % 3 == 0, -1, 1)
    domains = ["math" if j % 2 else "chat" for j in range(N_PAIRS)]
    return margins, gold, domains


def compute(cache_dir: str | None = None) -> dict[str, Any]:
    """Recompute the slice; returns the hashes and what they were computed under."""
    import torch

    _, cfg = load_offline_config(OFFLINE_CONFIG)
    # a fresh embedding cache: the features are computed, not read
    fresh = {} if cache_dir is None else {"cache_dir": cache_dir}
    featurizer = create_ref("featurizer", cfg.featurizer, **fresh)
    features = np.asarray(featurizer.embed_pairs(*slice_texts()), dtype=np.float64)
    margins, gold, domains = slice_labels()
    settings = train_settings(cfg)
    settings.epochs, settings.patience, settings.batch_size = 6, 6, 16
    result = train_offline_router(features, margins, gold, settings, seed=0, strata=domains)
    state = {k: v.detach().to(torch.float64).numpy() for k, v in result.net.state_dict().items()}
    return {
        "features_sha256": arrays_sha256(features),
        "bundle_sha256": arrays_sha256(*(state[k] for k in sorted(state))),
        "features_shape": list(features.shape),
        "featurizer": featurizer.identity(),
        "compute": describe(),
        "cpu_vendor": cpu_vendor(),
    }


def cpu_vendor() -> str:
    """The CPU vendor (``/proc/cpuinfo``'s vendor_id, e.g. GenuineIntel, AuthenticAMD; "unknown" elsewhere):
    MKL's reproducible mode holds bit for bit only across Intel processors."""
    info = Path("/proc/cpuinfo")
    for line in info.read_text().splitlines() if info.exists() else []:
        if line.startswith("vendor_id"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        got = compute(cache_dir=tmp)
    print(json.dumps(got, indent=2))
    if args.write:
        atomic_write_text(REFERENCE, json.dumps(got, indent=2, sort_keys=True) + "\n")
        print(f"wrote {REFERENCE}")
        return 0
    want = json.loads(REFERENCE.read_text(encoding="utf-8"))
    same = all(got[k] == want[k] for k in ("features_sha256", "bundle_sha256"))
    print("matches the committed hashes" if same else "DIFFERS from the committed hashes", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
