"""Built-in response generators (policy sampling for training and evaluation).

Both factories take ``(model, tokenizer, **params)``; the generator modules import torch and vllm
only when a generator is built or used, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

from rmroute.generators.hf import TransformersGenerator
from rmroute.generators.vllm_gen import VllmGenerator
from rmroute.harness.core.hookspecs import Register, hookimpl


def transformers_generator(model: Any, tokenizer: Any, **params: Any) -> Any:
    return TransformersGenerator(model, tokenizer, **params)


def vllm_generator(model: Any, tokenizer: Any, **params: Any) -> Any:
    return VllmGenerator(model, tokenizer, **params)


@hookimpl
def register_generators(register: Register) -> None:
    register(
        "transformers", transformers_generator,
        description="batched model.generate on the live policy (CPU or CUDA, left padding); "
                    "params: temperature (0 = greedy), top_p, top_k, max_new_tokens, batch_size, stop",
        in_process=True,
    )
    register(
        "vllm", vllm_generator,
        description="vLLM engine over the base weights (model_path, offline) with the live LoRA adapter "
                    "synced after each update (enable_lora); tensor_parallel_size, gpu_memory_utilization, "
                    "dtype; needs pip install 'rmroute[gpu]'",
        in_process=False, requires="vllm",
    )
