"""Built-in response generators (policy sampling for training and evaluation)."""

from __future__ import annotations

from harness.hookspecs import Register, hookimpl


@hookimpl
def register_generators(register: Register) -> None:
    # --- generators register below this line (modules import torch/vllm lazily) ---
    pass
