"""The ``transformers`` generator: batched sampling from the live policy with ``model.generate``.

``TransformersGenerator(model, tokenizer, **params)`` satisfies :class:`rmroute.harness.core.types.Generator`.
The runner passes the policy model it trains (a transformers model, possibly PEFT-wrapped, already
on its device) and its tokenizer (left padding, pad token set; see :mod:`rmroute.harness.pipelines.policy`), so the
generator always samples from the current weights and :meth:`sync` has nothing to copy.

Conventions:

* ``generate(prompts, n, seed)`` expands the prompts to ``prompt_0 × n, prompt_1 × n, ...`` and
  runs ``model.generate`` on chunks of ``batch_size`` of those rows; the result is ``n`` completions
  per prompt, in prompt order, decoded from the new tokens only with special tokens skipped.
* ``temperature == 0`` is greedy decoding (``do_sample=False``; top-p/top-k unused). Otherwise
  sampling with ``temperature``, ``top_p`` and ``top_k`` (0 = off, the full distribution, as
  vLLM's default; transformers' own default would be 50).
* Seeding: each call runs inside ``torch.random.fork_rng`` (CPU and the model's CUDA device) and
  seeds chunk c with ``seed + c``. The same (prompts, n, seed, batch_size, weights) gives the same
  completions on CPU, and the caller's global torch RNG state is the same after the call as before.
* ``stop`` strings end a completion: generation of that row stops at the first one
  (``stop_strings`` of ``generate``) and the text is cut just before it (the stop string is not
  part of the completion, as in vLLM).
* Tokenisation: a prompt that already begins with the tokenizer's BOS text (a chat template that
  writes it) is encoded without special tokens so BOS is not doubled; others get the tokenizer's
  usual special tokens (``add_special_tokens`` forces either way).
* ``stats``: cumulative ``tokens`` (generated tokens up to and including the first EOS, pads not
  counted), ``seconds`` (wall time inside ``generate`` calls) and ``calls``;
  :attr:`tokens_per_second` = tokens / seconds.
* The model is put in eval mode for the call and back in train mode afterwards if it was training.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Sequence

from pydantic import Field, ValidationError

from rmroute.harness.core.config import StrictModel
from rmroute.harness.core.errors import ConfigError


class TransformersParams(StrictModel):
    """Parameters of the ``transformers`` generator."""

    temperature: float = Field(1.0, ge=0.0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 = no top-k cut")
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(16, ge=1, description="rows (prompts x n) per generate call")
    stop: list[str] | None = Field(None, description="strings that end a completion (not included in it)")
    add_special_tokens: bool | None = Field(
        None, description="None: add the tokenizer's special tokens unless the prompt starts with BOS"
    )


def validate_params(model_cls: type[StrictModel], generator: str, params: dict[str, Any]) -> StrictModel:
    """Validate generator params into ``model_cls``; errors name the generator, the key and the rule."""
    try:
        return model_cls.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"generator {generator!r}: invalid params: {problems}") from None


def check_prompts(generator: str, prompts: Sequence[str], n: int) -> list[str]:
    """Reject a bare string, non-string prompts and n < 1 with a message naming the item."""
    if isinstance(prompts, str):
        raise ValueError(f"{generator}: prompts must be a sequence of strings, not one string")
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"{generator}: prompts[{i}] must be a string, got {type(p).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{generator}: n must be an int >= 1, got {n!r}")
    return prompts


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop string."""
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


class TransformersGenerator:
    """Samples ``n`` completions per prompt from the live policy with ``model.generate``."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, **params: Any) -> None:
        if model is None or tokenizer is None:
            raise ValueError("transformers generator: needs the policy model and its tokenizer")
        self.params: TransformersParams = validate_params(TransformersParams, self.name, params)  # type: ignore[assignment]
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "transformers generator: the tokenizer has no pad token (load the policy through "
                "rmroute.harness.pipelines.policy.load_policy, which sets one)"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.stats: dict[str, float] = {"tokens": 0, "seconds": 0.0, "calls": 0}

    # ---- Generator protocol ----------------------------------------------------------------
    def generate(self, prompts: Sequence[str], n: int, seed: int,
                 max_new_tokens: int | None = None) -> list[list[str]]:
        prompts = check_prompts(self.name, prompts, n)
        rows = [p for p in prompts for _ in range(n)]
        texts: list[str] = []
        bs = self.params.batch_size
        with self._eval_mode(), self._forked_rng():
            for c, start in enumerate(range(0, len(rows), bs)):
                texts.extend(self._generate_chunk(rows[start:start + bs], seed + c, max_new_tokens))
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]

    def sync(self, model: Any) -> None:
        """Nothing to copy: this generator samples from the live model. A new model object (e.g.
        the policy re-wrapped by PEFT) replaces the one held."""
        if model is not None:
            self.model = model

    @property
    def tokens_per_second(self) -> float:
        return self.stats["tokens"] / self.stats["seconds"] if self.stats["seconds"] > 0 else 0.0

    # ---- internals -------------------------------------------------------------------------
    def _device(self):
        import torch

        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    def _forked_rng(self):
        """Fork the CPU RNG and every initialised CUDA device's RNG (``manual_seed`` seeds them all);
        all are restored on exit."""
        import torch

        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else [])

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        try:
            yield
        finally:
            if was_training:
                self.model.train()

    def _encode(self, rows: list[str]):
        """Left-padded input ids and attention mask for one chunk."""
        tok = self.tokenizer
        bos = tok.bos_token
        encoded = []
        for text in rows:
            add = self.params.add_special_tokens
            if add is None:
                add = not (bos and text.startswith(bos))
            encoded.append({"input_ids": tok(text, add_special_tokens=add)["input_ids"]})
        if any(len(e["input_ids"]) == 0 for e in encoded):
            raise ValueError("transformers generator: a prompt encodes to zero tokens (empty prompt?)")
        old_side = tok.padding_side
        tok.padding_side = "left"
        try:
            return tok.pad(encoded, return_tensors="pt")
        finally:
            tok.padding_side = old_side

    def _generation_kwargs(self, max_new_tokens: int | None = None) -> dict[str, Any]:
        p = self.params
        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens or p.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if p.temperature == 0:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kw.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k)
        if p.stop:
            kw.update(stop_strings=list(p.stop), tokenizer=self.tokenizer)
        return kw

    def _eos_ids(self) -> set[int]:
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        if eos is None:
            return set()
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}

    def _count_tokens(self, new_ids) -> int:
        """Generated tokens per row up to and including the first EOS; pads after it not counted."""
        import torch

        eos = torch.tensor(sorted(self._eos_ids()), dtype=new_ids.dtype, device=new_ids.device)
        is_eos = torch.isin(new_ids, eos) if eos.numel() else torch.zeros_like(new_ids, dtype=torch.bool)
        before = (torch.cumsum(is_eos.int(), dim=1) - is_eos.int()) == 0  # no EOS earlier in the row
        counted = before & (is_eos | (new_ids != self.tokenizer.pad_token_id))
        return int(counted.sum())

    def _generate_chunk(self, rows: list[str], seed: int, max_new_tokens: int | None) -> list[str]:
        import torch

        batch = self._encode(rows).to(self._device())
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **self._generation_kwargs(max_new_tokens)
            )
        self.stats["seconds"] += time.perf_counter() - t0
        new_ids = out[:, batch["input_ids"].shape[1]:]
        self.stats["tokens"] += self._count_tokens(new_ids)
        self.stats["calls"] += 1
        texts = self.tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        return [cut_at_stop(t, self.params.stop) for t in texts]
