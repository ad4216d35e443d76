"""Where a model runs and in which precision: the device and dtype choice every model loader shares.

The RM backends (``rmroute.reward_models.hf``), the text featurizer (``rmroute.routers.featurize``)
and the policy loader (``rmroute.harness.pipelines.policy``) all resolve a config's ``device`` and
``dtype`` here, so ``auto`` means the same thing everywhere. :func:`compute_tag` is the part of a
cache key that says which code path computed a number (it depends on the resolved device, hence here).

torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from rmroute.harness.determinism import THREADS, profile


def pick_device(device: str = "auto") -> str:
    """``auto``: ``cuda`` when a GPU is visible, else ``cpu``; an explicit ``cuda...`` without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use 'auto' or 'cpu')")
    return device


def pick_dtype(dtype: str, device: str):
    """The torch dtype for ``dtype`` (``auto``: bfloat16 on a GPU, float32 on the CPU)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(table)}, got {dtype!r}")
    return table[dtype]


def compute_tag(device_request: str) -> str:
    """What a CPU computation's bits depend on besides the model (:mod:`rmroute.harness.determinism`),
    for cache keys; empty on a GPU (outside that guarantee)."""
    return f":cpu={profile()}-t{THREADS}" if pick_device(device_request) == "cpu" else ""
