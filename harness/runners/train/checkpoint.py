"""Per-iteration training checkpoints, written atomically and checked before they are read.

Layout under a run's checkpoint folder::

    latest.json                 {"iteration": n, "folder": "iter-0000n",
                                 "sha256": {"state.pkl": ..., "optimizer.pt": ..., "adapter/...": ...}}
                                (atomic rewrite; the sha256 of every file of the checkpoint)
    iter-0000n/adapter/         the LoRA adapter (peft ``save_pretrained``: adapter_config.json +
                                adapter_model.safetensors); usable as ``policy.adapter`` for evaluation
    iter-0000n/optimizer.pt     the optimiser's ``state_dict`` (torch.save)
    iter-0000n/state.pkl        everything else: router and normalizer state, RNG states, iteration,
                                data cursor and the per-iteration log (pickle of plain Python/numpy)

A checkpoint is first written in full to a hidden temporary folder, fsynced, renamed to
``iter-0000n`` and only then published by rewriting ``latest.json``; older ``iter-*`` folders are
removed afterwards. A run killed at any moment therefore leaves ``latest.json`` pointing at a
complete checkpoint (the previous one, or the new one).

Before anything is read back (:func:`load_latest`), the folder ``latest.json`` names must be the
plain ``iter-NNNNN`` child of the checkpoint folder for its iteration (no other path, no symlink),
and every file must match the sha256 recorded when it was written; only then is ``state.pkl``
unpickled. A checkpoint that fails a check (truncated, edited, written by an older rmroute without
hashes) raises :class:`CheckpointError` naming the file, with what to do: delete the checkpoint
folder, or run without ``--resume``.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmroute.harness.assets import file_sha256
from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.results import atomic_dir, atomic_write_text

LATEST = "latest.json"
#: files every checkpoint has (paths relative to its iter-NNNNN folder); all of them are hashed
REQUIRED = ("state.pkl", "optimizer.pt", "adapter/adapter_model.safetensors")
_FOLDER = re.compile(r"iter-\d{5,}")


class CheckpointError(RmrouteError):
    """A training checkpoint cannot be used; the message names the file and what to do."""


def _advice(root: Path) -> str:
    return f"delete the checkpoint folder {root} to start this run afresh, or run without --resume"


def _folder_name(iteration: int) -> str:
    return f"iter-{iteration:05d}"


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


def _file_hashes(folder: Path) -> dict[str, str]:
    """{path relative to ``folder`` (POSIX): sha256} of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def save_checkpoint(root: Path, iteration: int, model: Any, optimizer_state: dict[str, Any],
                    state: dict[str, Any]) -> Path:
    """Write checkpoint ``iteration`` (adapter of the PEFT ``model``, optimiser state, ``state``)."""
    import torch

    root = Path(root)
    name = _folder_name(iteration)
    final = root / name
    with atomic_dir(final) as tmp:
        model.save_pretrained(str(tmp / "adapter"))
        torch.save(optimizer_state, tmp / "optimizer.pt")
        with open(tmp / "state.pkl", "wb") as fh:
            pickle.dump({**state, "iteration": iteration}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    hashes = _file_hashes(final)
    atomic_write_text(root / LATEST, json.dumps({"iteration": iteration, "folder": name, "sha256": hashes}) + "\n")
    for old in root.glob("iter-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return final


def _read_pointer(root: Path) -> tuple[int, Path, dict[str, str]]:
    """(iteration, checkpoint folder, recorded hashes) from ``latest.json``, every part checked."""
    pointer = root / LATEST
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{pointer}: cannot be read ({type(exc).__name__}: {exc}); {_advice(root)}") from None
    if not isinstance(info, dict):
        raise CheckpointError(f"{pointer}: expected a JSON object, got {type(info).__name__}; {_advice(root)}")
    iteration, name, hashes = info.get("iteration"), info.get("folder"), info.get("sha256")
    if type(iteration) is not int or iteration < 1:
        raise CheckpointError(f"{pointer}: 'iteration' must be a positive integer, got {iteration!r}; {_advice(root)}")
    if not isinstance(name, str) or not _FOLDER.fullmatch(name) or name != _folder_name(iteration):
        raise CheckpointError(f"{pointer}: 'folder' must be {_folder_name(iteration)!r} (a child of {root}), "
                              f"got {name!r}; {_advice(root)}")
    if not isinstance(hashes, dict) or any(not isinstance(hashes.get(f), str) for f in REQUIRED):
        raise CheckpointError(f"{pointer}: no sha256 recorded for {', '.join(REQUIRED)} (a checkpoint written "
                              f"by an older rmroute, or an edited pointer); {_advice(root)}")
    folder = root / name
    if folder.is_symlink() or not folder.is_dir() or folder.resolve().parent != root.resolve():
        raise CheckpointError(f"{folder}: not a folder inside {root} (missing, or a symlink); {_advice(root)}")
    return iteration, folder, hashes


def _verify(root: Path, folder: Path, hashes: dict[str, str]) -> None:
    """Every file named in ``hashes`` lies inside ``folder`` and has the recorded sha256."""
    inside = folder.resolve()
    for rel, expected in sorted(hashes.items()):
        path = folder / rel
        if not path.resolve().is_relative_to(inside):
            raise CheckpointError(f"{root / LATEST}: file {rel!r} is not inside {folder}; {_advice(root)}")
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint; {_advice(root)}")
        got = file_sha256(path)
        if got != expected:
            raise CheckpointError(f"{path}: sha256 {got[:16]}... differs from {str(expected)[:16]}... recorded in "
                                  f"{root / LATEST} (the file is truncated, corrupt or was changed); {_advice(root)}")


def load_latest(root: Path) -> Checkpoint | None:
    """The checkpoint ``latest.json`` points at, checked (see the module docstring), or None when
    there is none yet."""
    root = Path(root)
    if not (root / LATEST).is_file():
        return None
    iteration, folder, hashes = _read_pointer(root)
    _verify(root, folder, hashes)
    try:
        with open(folder / "state.pkl", "rb") as fh:
            state = pickle.load(fh)  # noqa: S301 - our own file: its sha256 matched latest.json above
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise CheckpointError(f"{folder / 'state.pkl'}: cannot be read ({type(exc).__name__}: {exc}); "
                              f"{_advice(root)}") from None
    if not isinstance(state, dict) or state.get("iteration") != iteration:
        raise CheckpointError(f"{folder / 'state.pkl'}: not the state of iteration {iteration}; {_advice(root)}")
    return Checkpoint(folder=folder, iteration=iteration, state=state)


def load_optimizer_state(ck: Checkpoint) -> dict[str, Any]:
    """The optimiser ``state_dict`` of a checkpoint (tensors and plain values only: ``weights_only``)."""
    import torch

    try:
        return torch.load(ck.optimizer_path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file; name the file
        raise CheckpointError(f"{ck.optimizer_path}: cannot be read ({type(exc).__name__}: {exc}); "
                              f"{_advice(ck.folder.parent)}") from None


def load_adapter_weights(model: Any, adapter_dir: Path) -> None:
    """Copy the saved LoRA weights into the (already PEFT-wrapped) ``model``'s default adapter."""
    from peft import set_peft_model_state_dict
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(adapter_dir) / "adapter_model.safetensors"
    advice = _advice(Path(adapter_dir).parent.parent)
    try:
        weights = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); {advice}") from None
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
    if missing:
        raise CheckpointError(f"{path}: adapter weights do not fit this policy: {missing[:3]}; {advice}")
