"""Per-iteration training checkpoints, written atomically.

Layout under a run's checkpoint folder::

    latest.json                 {"iteration": n, "folder": "iter-0000n"}   (atomic rewrite)
    iter-0000n/adapter/         the LoRA adapter (peft ``save_pretrained``: adapter_config.json +
                                adapter_model.safetensors); usable as ``policy.adapter`` for evaluation
    iter-0000n/optimizer.pt     the optimiser's ``state_dict`` (torch.save)
    iter-0000n/state.pkl        everything else: router and normaliser state, RNG states, iteration,
                                data cursor and the per-iteration log (pickle of plain Python/numpy)

A checkpoint is first written in full to a hidden temporary folder, fsynced, renamed to
``iter-0000n`` and only then published by rewriting ``latest.json``; older ``iter-*`` folders are
removed afterwards. A run killed at any moment therefore leaves ``latest.json`` pointing at a
complete checkpoint (the previous one, or the new one).
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.results import atomic_dir, atomic_write_text

LATEST = "latest.json"


@dataclass
class Checkpoint:
    folder: Path
    iteration: int
    state: dict[str, Any]

    @property
    def adapter_dir(self) -> Path:
        return self.folder / "adapter"

    @property
    def optimizer_path(self) -> Path:
        return self.folder / "optimizer.pt"


def save_checkpoint(root: Path, iteration: int, model: Any, optimizer_state: dict[str, Any],
                    state: dict[str, Any]) -> Path:
    """Write checkpoint ``iteration`` (adapter of the PEFT ``model``, optimiser state, ``state``)."""
    import torch

    root = Path(root)
    name = f"iter-{iteration:05d}"
    final = root / name
    with atomic_dir(final) as tmp:
        model.save_pretrained(str(tmp / "adapter"))
        torch.save(optimizer_state, tmp / "optimizer.pt")
        with open(tmp / "state.pkl", "wb") as fh:
            pickle.dump({**state, "iteration": iteration}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_text(root / LATEST, json.dumps({"iteration": iteration, "folder": name}) + "\n")
    for old in root.glob("iter-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest(root: Path) -> Checkpoint | None:
    """The checkpoint ``latest.json`` points at, or None when there is none yet."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
        folder = root / info["folder"]
        with open(folder / "state.pkl", "rb") as fh:
            state = pickle.load(fh)  # noqa: S301 - our own checkpoint, written by save_checkpoint
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"checkpoint {pointer}: cannot be read ({type(exc).__name__}: {exc}); "
                         "delete the folder to start the run afresh") from None
    return Checkpoint(folder=folder, iteration=int(info["iteration"]), state=state)


def load_adapter_weights(model: Any, adapter_dir: Path) -> None:
    """Copy the saved LoRA weights into the (already PEFT-wrapped) ``model``'s default adapter."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
    if missing:
        raise ValueError(f"checkpoint {adapter_dir}: adapter weights do not fit this policy: {missing[:3]}")
