"""The ``vllm`` generator: fast sampling with vLLM, the policy's LoRA adapter synced after updates.

``VllmGenerator(model, tokenizer, model_path=..., **params)`` satisfies
:class:`rmroute.harness.core.types.Generator`. vLLM is optional (``pip install 'rmroute[gpu]'``, GPU machines
only) and imported lazily when the generator is built; without it the factory raises a
:class:`~rmroute.harness.core.errors.PluginError` that says so.

How it works:

* vLLM loads the policy's **base** weights from ``model_path`` (a local folder; offline), with
  ``tensor_parallel_size``, ``gpu_memory_utilization``, ``dtype`` and ``seed`` passed to ``vllm.LLM``.
* With ``enable_lora`` the training policy is a PEFT model: :meth:`sync` saves its adapter
  (``model.save_pretrained``) to a fresh sub-folder of a private temp folder and builds a new
  ``LoRARequest(name, id, path)`` with a new integer id, so vLLM loads the new weights instead of a
  cached adapter; every ``generate`` uses the latest one. The previous export is deleted. The
  generator also syncs once when built, so it starts from the live adapter.
* Without ``enable_lora`` vLLM samples from the base weights; :meth:`sync` then refuses a PEFT
  model (its updates would be silently ignored) and is a no-op otherwise. Full fine-tuning is not
  synced into vLLM: use the ``transformers`` generator for it.
* ``generate(prompts, n, seed)`` sends every prompt once with
  ``SamplingParams(n=n, temperature, top_p, top_k, max_tokens, seed, stop)`` (greedy: n copies
  of the prompt with ``n=1``, since older vLLM rejects n > 1 without sampling); prompts are
  tokenised here with the same BOS rule as the ``transformers`` generator (no second BOS when the
  formatted prompt already starts with it) and passed as ``prompt_token_ids``. ``temperature == 0``
  is greedy. Stop strings are excluded from the text (vLLM's default). The per-request seed makes
  the same call give the same completions on the same engine.
* ``stats``: cumulative ``tokens`` (sum of generated token ids), ``seconds`` and ``calls``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from rmroute.generators.hf import check_prompts, validate_params
from rmroute.harness.core.config import StrictModel
from rmroute.harness.core.errors import ConfigError, PluginError

INSTALL_HINT = "pip install 'rmroute[gpu]' (GPU machines only; it pulls a CUDA build of torch)"


class VllmParams(StrictModel):
    """Parameters of the ``vllm`` generator."""

    model_path: str | None = Field(None, description="local folder with the policy's base weights")
    temperature: float = Field(1.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 = no top-k cut")
    max_new_tokens: int = Field(128, ge=1)
    stop: list[str] | None = None
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    enable_lora: bool = False
    max_lora_rank: int = Field(64, ge=1)
    seed: int = 0
    add_special_tokens: bool | None = None


def import_vllm() -> Any:
    """The ``vllm`` module, or a PluginError naming the extra that installs it."""
    try:
        import vllm
    except ImportError as exc:
        raise PluginError(f"generator 'vllm' needs the vllm package, which is not installed ({exc}): {INSTALL_HINT}") from None
    return vllm


def _lora_request_class(vllm: Any) -> Any:
    lora = getattr(vllm, "LoRARequest", None)
    if lora is None:
        from vllm.lora.request import LoRARequest as lora
    return lora


def is_peft_model(model: Any) -> bool:
    return hasattr(model, "peft_config") and callable(getattr(model, "save_pretrained", None))


class VllmGenerator:
    """Samples with a vLLM engine over the base weights, plus the live LoRA adapter when enabled."""

    name = "vllm"

    def __init__(self, model: Any, tokenizer: Any, **params: Any) -> None:
        self.params: VllmParams = validate_params(VllmParams, self.name, params)  # type: ignore[assignment]
        self._vllm = import_vllm()
        self.tokenizer = tokenizer
        self.model_path = self._resolve_model_path(model)
        self.stats: dict[str, float] = {"tokens": 0, "seconds": 0.0, "calls": 0}
        self.lora_request: Any = None
        self._lora_id = 0
        self._tmp = Path(tempfile.mkdtemp(prefix="rmroute-vllm-lora-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        p = self.params
        engine_kwargs: dict[str, Any] = dict(
            model=self.model_path, tensor_parallel_size=p.tensor_parallel_size,
            gpu_memory_utilization=p.gpu_memory_utilization, dtype=p.dtype, seed=p.seed,
        )
        if p.enable_lora:
            engine_kwargs.update(enable_lora=True, max_lora_rank=p.max_lora_rank, max_loras=1)
        self.llm = self._vllm.LLM(**engine_kwargs)
        if p.enable_lora and is_peft_model(model):
            self.sync(model)

    def _resolve_model_path(self, model: Any) -> str:
        path = self.params.model_path
        if path is None:
            base = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
            if base and Path(base).is_dir():
                path = base
        if path is None:
            raise ConfigError(
                "generator 'vllm': params.model_path is required (a local folder with the policy's "
                "base weights; vLLM loads its own copy)"
            )
        if not Path(path).is_dir():
            raise ConfigError(f"generator 'vllm': model_path {path!r} is not a local folder (offline weights expected)")
        return str(path)

    # ---- Generator protocol ----------------------------------------------------------------
    def sync(self, model: Any) -> None:
        """Export the live adapter to a new folder and point the next ``generate`` at it (new id)."""
        if not self.params.enable_lora:
            if is_peft_model(model):
                raise ConfigError(
                    "generator 'vllm': the policy is a LoRA (PEFT) model but enable_lora is false, so "
                    "vLLM would keep sampling from the base weights; set enable_lora: true"
                )
            return
        if not is_peft_model(model):
            raise ConfigError(
                "generator 'vllm': enable_lora is set but the policy passed to sync() is not a PEFT "
                "model; vLLM syncs LoRA adapters only (use the transformers generator for full fine-tuning)"
            )
        self._lora_id += 1
        folder = self._tmp / f"adapter-{self._lora_id}"
        model.save_pretrained(str(folder))
        if not (folder / "adapter_config.json").is_file():
            raise PluginError(f"generator 'vllm': saving the adapter wrote no adapter_config.json in {folder}")
        lora_cls = _lora_request_class(self._vllm)
        previous = self.lora_request
        self.lora_request = lora_cls(f"policy-{self._lora_id}", self._lora_id, str(folder))
        if previous is not None:
            shutil.rmtree(self._tmp / f"adapter-{self._lora_id - 1}", ignore_errors=True)

    def generate(self, prompts: Sequence[str], n: int, seed: int,
                 max_new_tokens: int | None = None) -> list[list[str]]:
        prompts = check_prompts(self.name, prompts, n)
        if not prompts:
            return []
        # greedy decoding gives one distinct completion: send n copies of the prompt with n=1
        # (older vLLM rejects n > 1 with temperature 0)
        copies = n if self.params.temperature == 0 else 1
        sampling = self._sampling_params(n // copies, seed, max_new_tokens)
        requests = [{"prompt_token_ids": self._encode(p)} for p in prompts for _ in range(copies)]
        kwargs: dict[str, Any] = {"use_tqdm": False}
        if self.lora_request is not None:
            kwargs["lora_request"] = self.lora_request
        t0 = time.perf_counter()
        outputs = self.llm.generate(requests, sampling, **kwargs)
        self.stats["seconds"] += time.perf_counter() - t0
        self.stats["calls"] += 1
        if len(outputs) != len(requests):
            raise PluginError(f"generator 'vllm': got {len(outputs)} outputs for {len(requests)} requests")
        result: list[list[str]] = []
        for i in range(len(prompts)):
            completions = [c for out in outputs[i * copies:(i + 1) * copies] for c in out.outputs]
            if len(completions) != n:
                raise PluginError(f"generator 'vllm': prompt {i} got {len(completions)} completions, expected {n}")
            self.stats["tokens"] += sum(len(c.token_ids) for c in completions)
            result.append([c.text for c in completions])
        return result

    @property
    def tokens_per_second(self) -> float:
        return self.stats["tokens"] / self.stats["seconds"] if self.stats["seconds"] > 0 else 0.0

    def close(self) -> None:
        """Delete the exported adapters (also done when the generator is garbage-collected)."""
        self._cleanup()

    # ---- internals -------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        add = self.params.add_special_tokens
        if add is None:
            bos = getattr(self.tokenizer, "bos_token", None)
            add = not (bos and text.startswith(bos))
        return list(self.tokenizer(text, add_special_tokens=add)["input_ids"])

    def _sampling_params(self, n: int, seed: int, max_new_tokens: int | None = None) -> Any:
        p = self.params
        kw: dict[str, Any] = dict(n=n, max_tokens=max_new_tokens or p.max_new_tokens, seed=int(seed), skip_special_tokens=True)
        if p.temperature == 0:
            kw["temperature"] = 0.0
        else:
            kw.update(temperature=p.temperature, top_p=p.top_p)
            if p.top_k > 0:
                kw["top_k"] = p.top_k
        if p.stop:
            kw["stop"] = list(p.stop)
        return self._vllm.SamplingParams(**kw)
