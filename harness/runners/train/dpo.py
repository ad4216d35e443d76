"""Per-pair DPO maths, written independently of TRL, for the training loop's loss feedback.

For a prompt x with chosen response y_w and rejected response y_l, a policy π_θ and a reference
π_ref (the initial policy: the LoRA adapters disabled), the sequence log-probability is the sum of
the completion tokens' log-probabilities given everything before them:

    log π(y | x) = Σ_t log softmax(logits_{t-1})[y_t]     over the completion tokens only

and the (sigmoid) DPO loss of the pair, with inverse temperature β, is

    Δ = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]
    loss = −log σ(β·Δ) = softplus(−β·Δ)

The implicit reward margin is β·Δ (> 0 when the policy already prefers y_w more than the reference
does). Tokenisation follows the convention TRL uses for non-conversational text so both compute the
same numbers: the completion is ``response + eos`` (unless it already ends with eos); ``prompt`` and
``prompt + completion`` are tokenised separately with the tokenizer's default special tokens, and the
completion tokens are those after the longest common prefix of the two token lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class PairLoss:
    """Per-pair DPO quantities (all (P,) float64 arrays)."""

    loss: np.ndarray          # softplus(−β·Δ)
    margin: np.ndarray        # β·Δ, the implicit reward margin
    policy_chosen: np.ndarray  # log π_θ(y_w|x)
    policy_rejected: np.ndarray
    ref_chosen: np.ndarray    # log π_ref(y_w|x)
    ref_rejected: np.ndarray


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_pair_side(tokenizer: Any, prompt: str, completion: str) -> tuple[list[int], int]:
    """(token ids of prompt + completion + eos, index where the completion starts)."""
    eos = tokenizer.eos_token or ""
    text = completion if completion.endswith(eos) else completion + eos
    p_ids = list(tokenizer(prompt)["input_ids"])
    full = list(tokenizer(prompt + text)["input_ids"])
    return full, _common_prefix(p_ids, full)


def sequence_logps(model: Any, tokenizer: Any, prompts: Sequence[str], completions: Sequence[str],
                   batch_size: int = 16, max_length: int | None = None) -> np.ndarray:
    """(N,) Σ log-prob of each completion (+eos) given its prompt under ``model`` (no gradient).

    Sequences are right-padded per chunk; ``max_length`` keeps the first tokens (as TRL's
    ``keep_start``), so completion tokens past it are not counted.
    """
    import torch

    if len(prompts) != len(completions):
        raise ValueError(f"sequence_logps: {len(prompts)} prompts but {len(completions)} completions")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = np.zeros(len(prompts), dtype=np.float64)
    encoded = [encode_pair_side(tokenizer, p, c) for p, c in zip(prompts, completions)]
    if max_length is not None:
        encoded = [(ids[:max_length], min(start, max_length)) for ids, start in encoded]
    for lo in range(0, len(encoded), batch_size):
        chunk = encoded[lo:lo + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        comp = torch.zeros((len(chunk), width), dtype=torch.bool)
        for i, (seq, start) in enumerate(chunk):
            ids[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            attn[i, :len(seq)] = 1
            comp[i, start:len(seq)] = True
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t+1
        tok = torch.gather(logp, 2, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
        mask = comp[:, 1:].to(device)
        out[lo:lo + len(chunk)] = (tok * mask).sum(dim=1).double().cpu().numpy()
    return out


def dpo_pair_losses(model: Any, tokenizer: Any, prompts: Sequence[str], chosen: Sequence[str],
                    rejected: Sequence[str], beta: float, batch_size: int = 16,
                    max_length: int | None = None) -> PairLoss:
    """Per-pair sigmoid DPO loss of a PEFT policy against its reference (adapters disabled)."""
    if not len(prompts) == len(chosen) == len(rejected):
        raise ValueError(f"dpo_pair_losses: {len(prompts)} prompts, {len(chosen)} chosen, {len(rejected)} rejected")
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        pc = sequence_logps(model, tokenizer, prompts, chosen, batch_size, max_length)
        pr = sequence_logps(model, tokenizer, prompts, rejected, batch_size, max_length)
        disable = getattr(model, "disable_adapter", None)
        if disable is None:
            raise ValueError("dpo_pair_losses: the policy has no LoRA adapter to disable for the reference")
        with disable():
            rc = sequence_logps(model, tokenizer, prompts, chosen, batch_size, max_length)
            rr = sequence_logps(model, tokenizer, prompts, rejected, batch_size, max_length)
    finally:
        if was_training:
            model.train()
    return pair_loss_from_logps(pc, pr, rc, rr, beta)


def pair_loss_from_logps(pc: np.ndarray, pr: np.ndarray, rc: np.ndarray, rr: np.ndarray, beta: float) -> PairLoss:
    """The DPO loss and margin from the four sequence log-probabilities (see the module docstring)."""
    margin = beta * ((pc - rc) - (pr - rr))
    loss = np.logaddexp(0.0, -margin)  # softplus(−βΔ), stable for large |βΔ|
    return PairLoss(loss=loss, margin=margin, policy_chosen=pc, policy_rejected=pr, ref_chosen=rc, ref_rejected=rr)


def trl_keeps(tokenizer: Any, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
              max_length: int | None) -> np.ndarray:
    """(P,) bool: the pairs TRL's DPO preprocessing keeps. With ``keep_start`` truncation TRL drops a pair
    whose prompt tokens (those before the completion starts on either side) fill ``max_length``; the
    loop drops them itself first, so every process knows its block before TRL sees it."""
    if max_length is None:
        return np.ones(len(prompts), dtype=bool)
    return np.array([min(encode_pair_side(tokenizer, p, c)[1], encode_pair_side(tokenizer, p, r)[1]) < max_length
                     for p, c, r in zip(prompts, chosen, rejected)], dtype=bool)
