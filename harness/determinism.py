"""Bit-identical numbers on any x86-64 machine: one CPU code path and fixed thread counts.

Why: the same float computation gives different bits on different CPUs, because the libraries pick
their kernels at run time from the CPU's instruction sets (AVX2, AVX-512, AMX) and split reductions by
thread count. On the machines rmroute is measured on (2-core Xeons of several generations) this moved
the offline router's features and bundle, and through them every learning router's metrics, from one
machine to the next. Measured on one machine (benchmarks/cpu_determinism.py): a MiniLM-sized linear +
GELU + LayerNorm in torch, torch's attention kernel and a float64 numpy matmul each give other bits
when the AVX-512 path is swapped for the AVX2 one, and numpy's matmul also when OpenBLAS uses 1 thread
instead of 2.

What: before numpy or torch is imported, :func:`pin_environment` (run when ``harness`` is imported)
sets each library's switch to the AVX2 code path, which every x86-64 CPU of the last decade has:

========================== ============================= =================================
library                    variable                      effect
========================== ============================= =================================
torch (ATen kernels)       ``ATEN_CPU_CAPABILITY=avx2``  vectorised ops, attention
torch (MKL BLAS)           ``MKL_CBWR=AVX2``             matmuls (conditional reproducibility)
torch (oneDNN)             ``ONEDNN_MAX_CPU_ISA=AVX2``   oneDNN primitives
numpy (OpenBLAS)           ``OPENBLAS_CORETYPE=Haswell`` matmuls; ``OPENBLAS_NUM_THREADS=1``
numpy (own SIMD loops)     ``NPY_DISABLE_CPU_FEATURES``  AVX-512 loops off (ufuncs, sums)
========================== ============================= =================================

and code that computes published inputs (text embeddings, RM scores, the offline router) runs under
:func:`fixed_threads` with a fixed torch thread count (:data:`THREADS`, not the machine's core count).
The cost is speed on CPUs with AVX-512 (measured in docs/performance.md). ``RMROUTE_NATIVE_CPU=1``
turns the pin off (native kernels, faster, not reproducible across machines). Values a user set
explicitly are kept. GPU computation is outside this guarantee.

:func:`profile` says what is in effect; run files record it, and caches key their entries by it, so
numbers computed under different code paths never mix.

Seeded generators: every random stream a run draws from a seed comes from :func:`derived_rng`
(``numpy.random.default_rng([seed, *keys, salt])``), one salt per purpose in :data:`PURPOSES`, so two
purposes drawing from one seed get independent streams and a reader finds every stream in one table.

numpy is imported inside the functions that use it: this module runs before numpy is loaded, to pin
its code path.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import numpy as np

#: torch threads for computations whose outputs are published (embeddings, scores, offline router)
THREADS = 2

PINS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL",
}

_STATE: dict[str, Any] = {}


def native() -> bool:
    return os.environ.get("RMROUTE_NATIVE_CPU", "").strip() not in ("", "0", "false", "no")


def pin_environment() -> None:
    """Set the variables in :data:`PINS` (unless set already or ``RMROUTE_NATIVE_CPU=1``).

    They take effect only for libraries not yet imported; :func:`profile` reports which did."""
    if _STATE:
        return
    _STATE["late"] = sorted(m for m in ("numpy", "torch") if m in sys.modules)
    if native():
        _STATE["pinned"] = False
        return
    for key, value in PINS.items():
        os.environ.setdefault(key, value)
    _STATE["pinned"] = True


def profile() -> str:
    """A short name of the CPU code path in effect: ``avx2`` when pinned and in effect, else
    ``native-<torch capability>`` (or ``native`` when torch is not loaded)."""
    pin_environment()
    if _STATE.get("pinned") and not _STATE["late"] and all(os.environ.get(k) == v for k, v in PINS.items()):
        return "avx2"
    if "torch" in sys.modules:
        import torch

        return f"native-{torch.backends.cpu.get_cpu_capability().lower()}"
    return "native"


def describe() -> dict[str, Any]:
    """What a run file records: the profile, the pins as set, and libraries imported before them."""
    return {"profile": profile(), "threads": THREADS,
            "env": {k: os.environ.get(k) for k in PINS}, "imported_before_pin": list(_STATE.get("late", []))}


@contextlib.contextmanager
def fixed_threads(n: int | None = THREADS) -> Iterator[int]:
    """torch's intra-op thread count set to ``n`` for the block (``None``: leave it), then restored.

    A parallel reduction is split by thread count, so a fixed count gives the same bits on machines
    with more or fewer cores."""
    import torch

    before = torch.get_num_threads()
    if n is not None and n > 0:
        torch.set_num_threads(int(n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def arrays_sha256(*arrays: Any) -> str:
    """sha256 of float64 arrays' shapes and bytes (every NaN written the same way): what run files
    record per input, so two machines can tell which input differed."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        a = np.where(np.isnan(a), np.nan, a)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---- seeded generators ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Purpose:
    """What a seeded stream is for: its ``salt`` (the last entry of the seed sequence), the ``keys``
    that come between the seed and the salt (e.g. the iteration), and ``where`` it is drawn."""

    salt: int
    keys: tuple[str, ...] = ()
    where: str = ""


#: purpose -> how its generator is derived from a seed: ``default_rng([seed, *keys, salt])``. The
#: salts are the ones the committed runs were made with; a new purpose takes a salt no other purpose
#: with the same keys uses (tests/test_determinism.py checks it).
PURPOSES: dict[str, Purpose] = {
    "replay-stream": Purpose(104729, where="replay: the online split's stream order (seed: the run's)"),
    "replay-drift": Purpose(7919, where="replay: a drift scenario's noise (seed: the run's)"),
    "arm-order": Purpose(613, where="replay and training: the order the pool's RMs are listed in (seed: the run's)"),
    "replay-folds": Purpose(827, where="replay: how items are dealt into folds (seed: the run's seed // folds: seeds "
                                       "0..F-1 share one assignment, F..2F-1 the next, ...)"),
    "table-splits": Purpose(1613, where="score-table pools: the table's own offline / online / test split by group "
                                        "(seed: table.splits.seed)"),
    "replay-fold-split": Purpose(1031, where="replay: which non-test items of a fold go offline (seed: the run's)"),
    "replay-label-budget": Purpose(1237, where="replay: the stream items a label budget covers (seed: the run's)"),
    "replay-consensus": Purpose(1429, where="replay: the RMs that vote in consensus feedback (seed: the run's)"),
    "train-prompt-order": Purpose(2718, where="train: the prompt order (seed: settings.prompts.shuffle_seed)"),
    "train-offline-pairs": Purpose(31, where="train: the offline pairs scored for fit_offline routers "
                                                "(seed: settings.prompts.shuffle_seed)"),
    "train-run": Purpose(7, where="train: one run's generator, e.g. the candidate pairs (seed: the run's)"),
    "train-generation": Purpose(11, ("iteration",), "train: the generation seed of one iteration (seed: the run's)"),
    "train-generation-chunk": Purpose(13, ("iteration", "chunk"), "train: the generation seed of chunk >= 1 of one "
                                                                 "iteration (chunk 0 keeps train-generation's; seed: the run's)"),
    "rm-validation-split": Purpose(1, where="RM training: the prompts held out for validation (seed: the RM's)"),
    "rm-length-batches": Purpose(7, ("epoch",), "RM training: length-grouped batches of one epoch (seed: the RM's)"),
    "router-monte-carlo": Purpose(1, where="routers: Monte Carlo draws, e.g. bayesian-adaptive (seed: the router's)"),
}

#: purposes that share a salt and keys, so one seed gives both the same stream: they predate the
#: table and their streams never meet (an RM trainer's validation split, a router's Monte Carlo
#: draws); separating them would change committed results
SHARED_SALTS: frozenset[frozenset[str]] = frozenset({frozenset({"rm-validation-split", "router-monte-carlo"})})


def derived_rng(seed: int, purpose: str, *keys: int) -> "np.random.Generator":
    """The numpy generator for ``purpose`` (a key of :data:`PURPOSES`) under ``seed``:
    ``numpy.random.default_rng([seed, *keys, salt])``, with ``keys`` the purpose's keys in order
    (``derived_rng(3, "train-generation", 5)`` is ``default_rng([3, 5, 11])``)."""
    import numpy as np

    if purpose not in PURPOSES:
        raise ValueError(f"unknown seed purpose {purpose!r}; purposes: {', '.join(sorted(PURPOSES))}")
    p = PURPOSES[purpose]
    if len(keys) != len(p.keys):
        raise ValueError(f"seed purpose {purpose!r} takes {len(p.keys)} key(s) ({', '.join(p.keys) or 'none'}), "
                         f"got {len(keys)}")
    return np.random.default_rng([seed, *keys, p.salt])
