"""Reward-model training data and the scorer's view of a pair, shared by RM training and scoring.

* which pairs train an RM (:func:`select_pairs`: a domain mix, a cap) and the held-out validation
  part (:func:`split_validation`: disjoint by prompt, stratified by domain), with
  :func:`data_sha256` naming the pairs;
* the token sequence a sequence-classification RM sees (:func:`scoring_text`, :class:`PairEncoder`:
  ``<leading specials> prompt + response + EOS <trailing specials>``, truncated at the token level,
  keeping the end of the prompt and the end of the response) — the same in training
  (:mod:`rmroute.harness.pipelines.rm_train`) and in the ``hf-seqcls`` backend
  (:class:`rmroute.reward_models.hf.HFSeqClsRM`);
* batch scoring of encoded sequences (:func:`score_ids`) and pairwise accuracy (:func:`pairwise_metrics`).

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np

from rmroute.harness.core.config import format_loc
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.core.types import PreferencePair
from rmroute.harness.determinism import derived_rng


class TrainConfigError(ConfigError):
    """A config that validates but does not fit the data or the model; ``key`` names the offending key."""

    def __init__(self, key: tuple[Any, ...], message: str) -> None:
        super().__init__(f"{format_loc(key)}: {message}")
        self.key, self.detail = key, message


# ---- data: selection by domain mix, validation split ----------------------------------------
def _pair_key(p: PreferencePair) -> tuple[str, ...]:
    return (p.domain, p.id, p.prompt, p.response_a, p.response_b, p.label or "")


def data_sha256(pairs: Sequence[PreferencePair]) -> str:
    """Order-independent hash of the pairs' content (id, domain, prompt, responses, label)."""
    h = hashlib.sha256()
    for key in sorted(_pair_key(p) for p in pairs):
        h.update(json.dumps(key, ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()


def select_pairs(
    pairs: Sequence[PreferencePair], domain_mix: dict[str, float], max_pairs: int | None, seed: int
) -> list[PreferencePair]:
    """Labelled pairs sampled to the domain mix, deterministically from ``seed``, whatever the input order.

    With weights ``w_d`` (normalized) and ``n_d`` labelled pairs per domain, the largest sample with
    those shares is ``T = min_d n_d / w_d`` pairs (capped by ``max_pairs``); domain d contributes
    ``round(T * w_d)`` pairs drawn without replacement. An empty mix keeps every domain as given.
    """
    labelled = sorted((p for p in pairs if p.label is not None), key=_pair_key)
    by_domain: dict[str, list[PreferencePair]] = {}
    for p in labelled:
        by_domain.setdefault(p.domain, []).append(p)
    rng = np.random.default_rng(seed)
    if not domain_mix:
        if max_pairs is None or len(labelled) <= max_pairs:
            return labelled
        keep = np.sort(rng.choice(len(labelled), size=max_pairs, replace=False))
        return [labelled[i] for i in keep]
    weights = {d: float(w) for d, w in sorted(domain_mix.items()) if w > 0}
    missing = [d for d in weights if d not in by_domain]
    if missing:
        present = ", ".join(f"{d} ({len(v)})" for d, v in sorted(by_domain.items())) or "none"
        raise TrainConfigError(
            ("domain_mix", missing[0]),
            f"no labelled pairs of domain {missing[0]!r} in the data; domains present: {present}",
        )
    total_w = sum(weights.values())
    shares = {d: w / total_w for d, w in weights.items()}
    total = min(len(by_domain[d]) / s for d, s in shares.items())
    if max_pairs is not None:
        total = min(total, float(max_pairs))
    out: list[PreferencePair] = []
    for d, s in shares.items():
        k = int(min(len(by_domain[d]), max(1, round(total * s))))
        idx = np.sort(rng.permutation(len(by_domain[d]))[:k])
        out.extend(by_domain[d][i] for i in idx)
    return out


def split_validation(
    pairs: Sequence[PreferencePair], eval_fraction: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, validation): disjoint by prompt, about ``eval_fraction`` of each domain's prompts held out."""
    if eval_fraction <= 0:
        return list(pairs), []
    rng = derived_rng(seed, "rm-validation-split")
    held: dict[str, bool] = {}
    by_domain: dict[str, list[str]] = {}
    for p in pairs:
        prompts = by_domain.setdefault(p.domain, [])
        if p.prompt not in prompts:
            prompts.append(p.prompt)
    for domain in sorted(by_domain):
        groups = [g for g in by_domain[domain] if g not in held]
        if len(groups) < 2:
            held.update({g: False for g in groups})
            continue
        n_val = min(len(groups) - 1, max(1, round(eval_fraction * len(groups))))
        chosen = set(rng.permutation(len(groups))[:n_val].tolist())
        held.update({g: i in chosen for i, g in enumerate(groups)})
    train = [p for p in pairs if not held[p.prompt]]
    val = [p for p in pairs if held[p.prompt]]
    return train, val


# ---- tokenisation: the scorer's text, truncated at the token level --------------------------
def scoring_text(tokenizer: Any, prompt: str, response: str) -> str:
    """The text HFSeqClsRM scores without a chat template (and TRL trains on): prompt + response + EOS."""
    eos = tokenizer.eos_token
    return prompt + response + (eos if eos and not response.endswith(eos) else "")


@dataclass
class PairEncoder:
    """Token ids of ``scoring_text`` with the tokenizer's special tokens, cut to ``max_length``.

    Untruncated ids equal ``tokenizer(scoring_text(...))["input_ids"]`` exactly (checked per item).
    """

    tokenizer: Any
    max_length: int
    prompt_min_tokens: int = 64
    response_keep: str = "end"

    def __post_init__(self) -> None:
        if not getattr(self.tokenizer, "is_fast", False):
            raise ValueError("reward-model training needs a fast (tokenizers-backed) tokenizer for offset mappings")
        probe = "hello world"
        full = self.tokenizer(probe, add_special_tokens=True)["input_ids"]
        body = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
        for start in range(len(full) - len(body) + 1):
            if full[start : start + len(body)] == body:
                self.head, self.tail = list(full[:start]), list(full[start + len(body) :])
                break
        else:
            raise ValueError("cannot locate the text inside the tokenizer's special-token template")
        self.budget = self.max_length - len(self.head) - len(self.tail)
        if self.budget < 2:
            raise ValueError(f"max_length={self.max_length} leaves no room next to {len(self.head) + len(self.tail)} special tokens")

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[list[int]], list[int], list[bool]]:
        """(ids, untruncated lengths, truncated flags) for each (prompt, response)."""
        texts = [scoring_text(self.tokenizer, p, r) for p, r in zip(prompts, responses)]
        if not texts:
            return [], [], []
        body = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        whole = self.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
        out, lengths, cut = [], [], []
        for i, (ids, offsets, prompt) in enumerate(zip(body["input_ids"], body["offset_mapping"], prompts)):
            full = self.head + list(ids) + self.tail
            if full != list(whole[i]):
                raise ValueError(f"tokenizer template mismatch on item {i}: special tokens are not a fixed head/tail")
            lengths.append(len(full))
            if len(ids) <= self.budget:
                out.append(full)
                cut.append(False)
                continue
            n_prompt = next((j for j, (s, _) in enumerate(offsets) if s >= len(prompt)), len(ids))
            p_ids, r_ids = list(ids[:n_prompt]), list(ids[n_prompt:])
            keep_p = min(len(p_ids), max(self.budget - len(r_ids), min(self.prompt_min_tokens, self.budget // 2)))
            keep_r = self.budget - keep_p
            p_part = p_ids[len(p_ids) - keep_p :] if keep_p else []
            r_part = r_ids[len(r_ids) - keep_r :] if self.response_keep == "end" else r_ids[:keep_r]
            out.append(self.head + p_part + r_part + self.tail)
            cut.append(True)
        return out, lengths, cut


def encode_pairs(encoder: PairEncoder, pairs: Sequence[PreferencePair]) -> dict[str, Any]:
    """chosen/rejected ids in TRL's pre-tokenised layout, plus truncation statistics."""
    prompts = [p.prompt for p in pairs]
    chosen = [p.response_a if p.label == "a" else p.response_b for p in pairs]
    rejected = [p.response_b if p.label == "a" else p.response_a for p in pairs]
    c_ids, c_len, c_cut = encoder.encode(prompts, chosen)
    r_ids, r_len, r_cut = encoder.encode(prompts, rejected)
    return {
        "chosen_ids": c_ids,
        "rejected_ids": r_ids,
        "lengths": c_len + r_len,
        "n_truncated": sum(a or b for a, b in zip(c_cut, r_cut)),
        "domains": [p.domain for p in pairs],
    }



def _pad_batch(seqs: list[list[int]], pad_id: int, device: Any):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def score_ids(model: Any, seqs: list[list[int]], pad_id: int, batch_size: int = 32) -> np.ndarray:
    """First logit per sequence (batches of similar length)."""
    import torch

    out = np.zeros(len(seqs))
    if not seqs:
        return out
    device = next(model.parameters()).device
    order = np.argsort([-len(s) for s in seqs], kind="stable")
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask = _pad_batch([seqs[i] for i in batch], pad_id, device)
            out[batch] = model(input_ids=ids, attention_mask=mask).logits[:, 0].float().cpu().numpy()
    model.train(was_training)
    return out


def pairwise_metrics(chosen: np.ndarray, rejected: np.ndarray) -> tuple[float, float]:
    """(accuracy with ties as half, mean Bradley-Terry loss)."""
    margin = chosen - rejected
    acc = float(np.mean((margin > 0) + 0.5 * (margin == 0)))
    loss = float(np.mean(np.logaddexp(0.0, -margin)))
    return acc, loss
