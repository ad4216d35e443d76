"""Hugging Face reward models: sequence-classification RMs and causal-LM log-likelihood RMs.

torch and transformers are imported inside the functions that need them, so registering these
plugins (and ``rmroute --help``) stays cheap. Models load on first use.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from rmroute.harness.assets import model_revision
from rmroute.harness.devices import compute_tag, pick_device, pick_dtype
from rmroute.harness.pipelines.rm_data import PairEncoder
from rmroute.harness.pipelines.rm_train import TRAIN_RECORD
from rmroute.reward_models.heuristics import check_batch


class TruncationWarning(UserWarning):
    """Some inputs were longer than max_length and were cut."""


# ---- shared plumbing ------------------------------------------------------------------------
def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Index batches of similar length (longest first), so padding is small."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class _HFBase:
    """Lazy loading, device/dtype choice, chat formatting, truncation accounting."""

    kind = "hf"

    def __init__(
        self,
        model: str,
        name: str | None = None,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 16,
        max_length: int = 1024,
        truncation_side: str = "left",
        use_chat_template: bool | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        cost: float = 1.0,
    ) -> None:
        if batch_size < 1 or max_length < 8:
            raise ValueError(f"{self.kind}: batch_size must be >= 1 and max_length >= 8, got {batch_size}, {max_length}")
        if truncation_side not in ("left", "right"):
            raise ValueError(f"{self.kind}: truncation_side must be 'left' or 'right', got {truncation_side!r}")
        self.model_id = str(model)
        self.name = name or Path(self.model_id).name
        self.revision = revision
        self.device_request, self.dtype_request = device, dtype
        self.batch_size, self.max_length = int(batch_size), int(max_length)
        self.truncation_side = truncation_side
        self.use_chat_template = use_chat_template
        self.trust_remote_code = bool(trust_remote_code)
        self.allow_pickle = bool(allow_pickle)
        self.cost = float(cost)
        self.truncated = 0  # items cut to max_length so far
        self._model = self._tokenizer = None

    # -- identity for the score cache --
    def identity(self) -> str:
        return (f"{self.kind}:{self.model_id}@{model_revision(self.model_id, self.revision)}:max{self.max_length}"
                f":{self.truncation_side}{compute_tag(self.device_request)}")

    def _load_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision:
            kw["revision"] = self.revision
        if not self.allow_pickle:
            kw["use_safetensors"] = True
        return kw

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.model_id, **{k: v for k, v in self._load_kwargs().items() if k != "use_safetensors"})
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise ValueError(f"{self.name}: tokenizer has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        tok.padding_side = "right"
        tok.truncation_side = self.truncation_side
        return tok

    #: the transformers Auto class a backend loads (subclasses set it)
    auto_class = "AutoModel"

    def load(self) -> None:
        """Load tokenizer and model on first use: device, dtype, safetensors-only, no remote code."""
        if self._model is not None:
            return
        import transformers

        self.device = pick_device(self.device_request)
        self._tokenizer = self._load_tokenizer()
        model = getattr(transformers, self.auto_class).from_pretrained(
            self.model_id, dtype=pick_dtype(self.dtype_request, self.device), **self._load_kwargs()
        )
        model.config.pad_token_id = self._tokenizer.pad_token_id
        self._model = model.to(self.device).eval()

    def chat(self) -> bool:
        if self.use_chat_template is None:
            return bool(getattr(self._tokenizer, "chat_template", None))
        if self.use_chat_template and not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"{self.name}: use_chat_template is on but the tokenizer has no chat template")
        return self.use_chat_template

    def _encode(self, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
        """Token ids truncated to max_length; counts and reports truncation."""
        ids = self._tokenizer(texts, add_special_tokens=add_special_tokens, truncation=False)["input_ids"]
        cut = sum(len(x) > self.max_length for x in ids)
        if cut:
            self._report_truncation(cut, len(ids))
            keep = self.max_length
            ids = [x if len(x) <= keep else (x[-keep:] if self.truncation_side == "left" else x[:keep]) for x in ids]
        return ids

    def _start(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Check the batch, load the model if the batch is not empty; the NaN-filled output array."""
        check_batch(self.name, prompts, responses)
        if len(prompts):
            self.load()
        return np.full(len(prompts), np.nan)

    def _report_truncation(self, cut: int, total: int) -> None:
        if cut:
            self.truncated += cut
            how = ("as in training (special tokens, the prompt's end and the response's end kept)"
                   if getattr(self, "_pair_encoder", None) is not None else f"on the {self.truncation_side}")
            warnings.warn(
                f"{self.name}: {cut} of {total} input(s) longer than max_length={self.max_length} tokens "
                f"were cut {how}", TruncationWarning, stacklevel=4,
            )

    def _pad(self, seqs: list[list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        pad = self._tokenizer.pad_token_id
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            input_ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
        return input_ids.to(self.device), mask.to(self.device)


# ---- sequence-classification RMs ------------------------------------------------------------
class HFSeqClsRM(_HFBase):
    """``AutoModelForSequenceClassification`` reward model: score = the first logit.

    Text: the tokenizer's chat template over a (user: prompt, assistant: response) conversation when
    it has one; otherwise ``prompt + response`` plus the EOS token, as TRL's reward trainer builds it.
    """

    kind = "hf-seqcls"
    auto_class = "AutoModelForSequenceClassification"

    def __init__(self, model: str, append_eos: bool = True, **kw: Any) -> None:
        super().__init__(model, **kw)
        self.append_eos = bool(append_eos)
        self._pair_encoder = None

    def load(self) -> None:
        """As the base class; an RM trained by `rmroute rm train` is also cut exactly as in training."""
        if self._model is not None:
            return
        super().load()
        record = Path(self.model_id) / TRAIN_RECORD
        if record.is_file() and not self.chat():
            scoring = json.loads(record.read_text(encoding="utf-8")).get("scoring", {})
            self._pair_encoder = PairEncoder(
                self._tokenizer, self.max_length, int(scoring.get("prompt_min_tokens", 64)),
                str(scoring.get("response_keep", "end")),
            )

    def identity(self) -> str:
        trained = (Path(self.model_id) / TRAIN_RECORD).is_file()
        return super().identity() + (":train-layout" if trained else "")

    def texts(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[str], bool]:
        """The strings the model sees, and whether the tokenizer should add special tokens."""
        self.load()
        if self.chat():
            return [
                self._tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False
                )
                for p, r in zip(prompts, responses)
            ], False
        eos = self._tokenizer.eos_token if self.append_eos else None
        return [p + r + (eos if eos and not r.endswith(eos) else "") for p, r in zip(prompts, responses)], True

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        import torch

        out = self._start(prompts, responses)
        if not out.size:
            return out
        if self._pair_encoder is not None:  # keeps [CLS]/[SEP], the prompt's end and the response's end
            ids, _, cut = self._pair_encoder.encode(list(prompts), list(responses))
            self._report_truncation(sum(cut), len(ids))
        else:
            texts, special = self.texts(prompts, responses)
            ids = self._encode(texts, special)
        with torch.inference_mode():
            for batch in length_sorted_batches([len(x) for x in ids], self.batch_size):
                input_ids, mask = self._pad([ids[i] for i in batch])
                logits = self._model(input_ids=input_ids, attention_mask=mask).logits
                out[batch] = logits[:, 0].float().cpu().numpy()
        return out


# ---- causal-LM log-likelihood RMs -----------------------------------------------------------
class HFLogLikRM(_HFBase):
    """Mean log-probability of the response's tokens given the prompt, under a causal LM (LASeR's RMs)."""

    kind = "hf-loglik"
    auto_class = "AutoModelForCausalLM"

    def prefix(self, prompt: str) -> str:
        self.load()
        if self.chat():
            return self._tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        import torch

        out = self._start(prompts, responses)
        if not out.size:
            return out
        chat = self.chat()
        prefixes = [self.prefix(p) for p in prompts]
        prompt_ids = self._tokenizer(prefixes, add_special_tokens=not chat)["input_ids"]
        resp_ids = self._tokenizer(list(responses), add_special_tokens=False)["input_ids"]
        seqs, starts = [], []
        for i, (p, r) in enumerate(zip(prompt_ids, resp_ids)):
            if not r:
                continue  # an empty response has no likelihood: abstain (NaN)
            if len(p) + len(r) > self.max_length:  # keep the whole response if it fits, cut the prompt's start
                keep_prompt = max(self.max_length - len(r), 1)
                p, r = p[-keep_prompt:], r[: self.max_length - keep_prompt]
            seqs.append((i, p + r))
            starts.append(len(p))
        self._report_truncation(sum(len(p) + len(r) > self.max_length for p, r in zip(prompt_ids, resp_ids) if r), len(seqs))
        with torch.inference_mode():
            for batch in length_sorted_batches([len(s) for _, s in seqs], self.batch_size):
                input_ids, mask = self._pad([seqs[j][1] for j in batch])
                logp = torch.log_softmax(self._model(input_ids=input_ids, attention_mask=mask).logits.float(), -1)
                token_logp = logp[:, :-1].gather(-1, input_ids[:, 1:, None])[..., 0]
                for row, j in enumerate(batch):
                    item, seq = seqs[j]
                    s, e = starts[j], len(seq)
                    out[item] = float(token_logp[row, s - 1 : e - 1].mean())
        return out
