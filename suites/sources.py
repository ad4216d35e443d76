"""Data sources: where preference pairs come from.

Spec strings:
  file:<path>     jsonl / json / parquet, in any of the layouts below

(`pypi:` and `hf:` sources arrive with the data issue.)

Layouts a record may have (checked in this order):
  {prompt, response_a, response_b, label?}   label: "a" | "b" | 0 (A) | 1 (B) | null
  {prompt, chosen, rejected}                 response_a = chosen (gold), response_b = rejected
  {chosen, rejected}                          Anthropic HH transcripts ("\\n\\nHuman: ... \\n\\nAssistant: ...");
                                              the shared conversation up to the last Assistant turn is the prompt
Optional in every layout: id (default <file>:<line>), domain (default "default"), metadata (mapping),
reference (kept as metadata["reference"]).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from harness.errors import NotBuiltError, RmrouteError
from harness.types import PreferencePair

ASSISTANT = "\n\nAssistant:"


class DataError(RmrouteError):
    """A data file or record is invalid; the message names the file, line and field."""


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record of a jsonl/json/parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield f"{path}:{n}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not valid JSON: {exc.msg}") from None
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json source must hold a list of records, got {type(data).__name__}")
        for n, rec in enumerate(data):
            yield f"{path}[{n}]", rec
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for n, rec in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}[row {n}]", rec
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)")


def _text(where: str, rec: dict, key: str) -> str:
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r} (fields present: {', '.join(sorted(rec)) or 'none'})")
    value = rec[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def split_hh(where: str, chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two Anthropic-HH transcripts into (shared prompt, chosen reply, rejected reply)."""
    cut_c, cut_r = chosen.rfind(ASSISTANT), rejected.rfind(ASSISTANT)
    if cut_c < 0 or cut_r < 0:
        raise DataError(f"{where}: field 'chosen'/'rejected' has no '\\n\\nAssistant:' turn (Anthropic HH layout)")
    prompt = chosen[: cut_c + len(ASSISTANT)]
    if rejected[: cut_r + len(ASSISTANT)] != prompt:
        raise DataError(f"{where}: 'chosen' and 'rejected' transcripts differ before the last Assistant turn")
    return prompt, chosen[len(prompt):], rejected[len(prompt):]


_LABELS = {"a": "a", "b": "b", 0: "a", 1: "b", "A": "a", "B": "b", None: None}


def record_to_pair(where: str, rec: Any, default_id: str) -> PreferencePair:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    if "response_a" in rec or "response_b" in rec:
        prompt, a, b = _text(where, rec, "prompt"), _text(where, rec, "response_a"), _text(where, rec, "response_b")
        raw = rec.get("label")
        if raw not in _LABELS or isinstance(raw, bool):
            raise DataError(f"{where}: field 'label' must be 'a', 'b', 0, 1 or null, got {raw!r}")
        label = _LABELS[raw]
    elif "chosen" in rec and "prompt" in rec:
        prompt, a, b, label = _text(where, rec, "prompt"), _text(where, rec, "chosen"), _text(where, rec, "rejected"), "a"
    elif "chosen" in rec:
        prompt, a, b = split_hh(where, _text(where, rec, "chosen"), _text(where, rec, "rejected"))
        label = "a"
    else:
        raise DataError(
            f"{where}: unknown record layout with fields {sorted(rec)}; expected prompt/response_a/response_b[/label], "
            "prompt/chosen/rejected, or chosen/rejected (Anthropic HH)"
        )
    meta = rec.get("metadata") or {}
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'metadata' must be an object, got {type(meta).__name__}")
    if rec.get("reference") is not None:
        meta = {**meta, "reference": rec["reference"]}
    domain = rec.get("domain", "default")
    if not isinstance(domain, str):
        raise DataError(f"{where}: field 'domain' must be a string, got {type(domain).__name__}")
    return PreferencePair(id=str(rec.get("id", default_id)), domain=domain, prompt=prompt,
                          response_a=a, response_b=b, label=label, metadata=meta)


def load_file(path: str | Path) -> list[PreferencePair]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    pairs, seen = [], {}
    for where, rec in _records(path):
        pair = record_to_pair(where, rec, default_id=f"{path.stem}:{where.rsplit(':', 1)[-1] if path.suffix == '.jsonl' else len(pairs)}")
        if pair.id in seen:
            raise DataError(f"{where}: duplicate id {pair.id!r} (first at {seen[pair.id]})")
        seen[pair.id] = where
        pairs.append(pair)
    return pairs


def load_source(spec: str, base: Path | None = None) -> list[PreferencePair]:
    """Load the preference pairs a source spec names."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        raise DataError(f"data source {spec!r} has no kind; expected file:<path>, pypi:... or hf:...")
    if kind == "file":
        path = Path(rest)
        if base is not None and not path.is_absolute():
            path = base / path
        return load_file(path)
    if kind in ("pypi", "hf"):
        raise NotBuiltError(f"data source kind {kind!r} ({spec}) arrives with the data issue; use file:<path> for now")
    raise DataError(f"data source {spec!r}: unknown kind {kind!r}; expected file, pypi or hf")
