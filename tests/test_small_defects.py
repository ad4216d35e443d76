"""Issue 13, item 9 ("smaller ones"): each test reproduces a defect found on main and checks the fix.

Checkpoints: a truncated adapter and a checkpoint folder or ``state.pkl`` that is not the one written
are clear errors naming the file, and nothing is unpickled before it is checked. Training: an
iteration whose kept pairs TRL drops entirely is skipped, not a crash. Data files: unknown fields,
empty files and non-labels are errors. verifier-math: an unusable reference abstains.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from rmroute.harness.core.errors import RmrouteError

# ---- checkpoints: what load_latest accepts ------------------------------------------------------
SPRUNG: list[str] = []


def _spring(where: str) -> dict:
    """Called when a trap pickle is loaded: records that unchecked bytes were unpickled."""
    SPRUNG.append(where)
    return {}


class _Trap:
    def __reduce__(self):
        return _spring, ("state.pkl",)


class _FakeAdapterModel:
    """What save_checkpoint needs of a PEFT model: ``save_pretrained`` writing an adapter folder."""

    def save_pretrained(self, folder: str) -> None:
        import torch
        from safetensors.torch import save_file

        Path(folder).mkdir(parents=True)
        save_file({"base_model.model.layer.lora_A.weight": torch.arange(64, dtype=torch.float32).reshape(8, 8)},
                  str(Path(folder) / "adapter_model.safetensors"))
        (Path(folder) / "adapter_config.json").write_text("{}")


@pytest.fixture
def ckpt(tmp_path):
    """A checkpoint folder holding iteration 1, written by save_checkpoint."""
    from rmroute.harness.runners.train.checkpoint import save_checkpoint

    SPRUNG.clear()
    root = tmp_path / "ckpt"
    save_checkpoint(root, 1, _FakeAdapterModel(), {"state": {}, "param_groups": []}, {"label": "x", "seed": 0})
    return root


def _edit_pointer(root: Path, **changes) -> None:
    info = json.loads((root / "latest.json").read_text())
    info.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del info[key]
    (root / "latest.json").write_text(json.dumps(info))


def test_a_good_checkpoint_loads(ckpt):
    from rmroute.harness.runners.train.checkpoint import load_latest

    ck = load_latest(ckpt)
    assert ck.iteration == 1 and ck.folder == ckpt / "iter-00001"
    assert ck.state["label"] == "x" and ck.state["iteration"] == 1


def test_truncated_adapter_is_a_clear_error_naming_the_file(ckpt):
    """Before: safetensors' SafetensorError, naming no file, at restore time."""
    from rmroute.harness.runners.train.checkpoint import load_adapter_weights, load_latest

    adapter = ckpt / "iter-00001" / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    with pytest.raises(RmrouteError) as err:
        load_latest(ckpt)
    msg = str(err.value)
    assert type(err.value).__name__ == "CheckpointError"
    assert str(adapter) in msg and "without --resume" in msg and f"delete the checkpoint folder {ckpt}" in msg
    # the adapter loader itself (used for any adapter folder) names the file too
    with pytest.raises(RmrouteError, match="adapter_model.safetensors: cannot be read") as err:
        load_adapter_weights(None, adapter.parent)
    assert str(adapter) in str(err.value)


@pytest.mark.parametrize("folder", ["../evil", "ABSOLUTE", "iter-00001/../../evil", "iter-00002"])
def test_pointer_must_name_this_iterations_folder(ckpt, folder):
    """Before: ``root / info["folder"]`` was unpickled wherever it pointed (here: a trap outside)."""
    from rmroute.harness.runners.train.checkpoint import load_latest

    evil = ckpt.parent / "evil"
    shutil.copytree(ckpt / "iter-00001", evil)
    (evil / "state.pkl").write_bytes(pickle.dumps(_Trap()))
    if folder == "iter-00002":
        shutil.copytree(evil, ckpt / "iter-00002")
    _edit_pointer(ckpt, folder=str(evil) if folder == "ABSOLUTE" else folder)
    with pytest.raises(RmrouteError, match="'folder' must be 'iter-00001'"):
        load_latest(ckpt)
    assert SPRUNG == []


def test_symlinked_checkpoint_folder_is_refused(ckpt):
    """An identical copy outside the checkpoint folder, reached through a symlink: refused."""
    from rmroute.harness.runners.train.checkpoint import load_latest

    outside = ckpt.parent / "outside"
    shutil.move(str(ckpt / "iter-00001"), outside)
    (ckpt / "iter-00001").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RmrouteError, match="symlink"):
        load_latest(ckpt)


def test_state_pkl_must_match_its_recorded_sha256(ckpt):
    """Before: any state.pkl in the folder was unpickled."""
    from rmroute.harness.runners.train.checkpoint import load_latest

    recorded = json.loads((ckpt / "latest.json").read_text())["sha256"]
    state = ckpt / "iter-00001" / "state.pkl"
    assert recorded["state.pkl"] == __import__("hashlib").sha256(state.read_bytes()).hexdigest()
    state.write_bytes(pickle.dumps(_Trap()))
    with pytest.raises(RmrouteError, match="state.pkl: sha256 .* differs") as err:
        load_latest(ckpt)
    assert "without --resume" in str(err.value)
    assert SPRUNG == []


def test_pointer_without_hashes_is_refused(ckpt):
    """A latest.json without sha256 (an older rmroute's, or edited) is not trusted."""
    from rmroute.harness.runners.train.checkpoint import load_latest

    (ckpt / "iter-00001" / "state.pkl").write_bytes(pickle.dumps(_Trap()))
    _edit_pointer(ckpt, sha256=None)
    with pytest.raises(RmrouteError, match="no sha256 recorded"):
        load_latest(ckpt)
    assert SPRUNG == []


# ---- training: through the runner -----------------------------------------------------------------
def test_resume_from_a_truncated_adapter_fails_the_run_naming_the_file(tmp_path):
    """The issue's case: kill after iteration 1, truncate the adapter, --resume."""
    pytest.importorskip("trl")
    from rmroute.harness.runners.train.runner import StopRequested, run
    from tests.test_train import _config, _quiet, _records

    cfg, path = _config(tmp_path, "trunc", routers=["random"], settings={"batch_prompts": 1, "samples_per_prompt": 2})
    with pytest.raises(StopRequested):
        run(cfg, path, tmp_path / "out", stop_after=1, log=_quiet)
    (adapter,) = (tmp_path / "out" / "checkpoints").rglob("adapter_model.safetensors")
    adapter.write_bytes(adapter.read_bytes()[:64])
    (rec,) = _records(run(cfg, path, tmp_path / "out", resume=True, log=_quiet)).values()
    assert rec.status == "failed"
    assert rec.error.startswith("CheckpointError: ") and str(adapter) in rec.error and "without --resume" in rec.error


def test_an_iteration_whose_pairs_trl_drops_is_skipped(tmp_path):
    """max_length 8: every prompt fills it, so TRL drops every kept pair. Before: the run crashed
    with 'num_samples should be a positive integer value, but got num_samples=0'."""
    pytest.importorskip("trl")
    from rmroute.harness.runners.train.runner import run
    from tests.test_train import _config, _records

    lines: list[str] = []
    cfg, path = _config(tmp_path, "skip", routers=["random"],
                        settings={"iterations": 2, "batch_prompts": 1, "samples_per_prompt": 2, "max_length": 8})
    (rec,) = _records(run(cfg, path, tmp_path / "out", log=lines.append)).values()
    assert rec.status == "ok", rec.error
    its = rec.extra["iterations"]
    decided = [i for i in its if i["pairs_kept"]]
    assert decided, "the fixture must keep at least one pair"
    for it in decided:
        assert "dropped all" in it["dpo_skipped"] and "max_length = 8" in it["dpo_skipped"]
        assert it["feedback_arms"] == it["pair_losses"] == it["feedback"] == []
        assert it["dpo_loss"] is None  # NaN: no step was taken
    assert rec.metrics["skipped_steps"] == len(decided)
    assert rec.metrics["iterations"] == 2
    assert sum("DPO step skipped" in line for line in lines) == len(decided)


# ---- data files ------------------------------------------------------------------------------------
def _jsonl(tmp_path, rows, name="d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"prompt": "p", "response_a": "A", "response_b": "B", "label": "a"}


@pytest.mark.parametrize("row, key, hint", [
    ({"prompt": "p", "response_a": "A", "response_b": "B", "lable": "b"}, "lable", "label"),
    ({"prompt": "p", "chosen": "A", "rejected": "B", "refernce": "3"}, "refernce", "reference"),
    ({"prompt": "p", "chosen": "A", "rejectd": "B"}, "rejectd", "rejected"),
    ({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b", "domian": "x"},
     "domian", "domain"),
    ({"prompt": "p", "response_a": "A", "response_b": "B", "score": 0.3}, "score", None),
])
def test_unknown_field_is_an_error_with_a_suggestion(tmp_path, row, key, hint):
    """Before: a typo such as 'lable' left the pair unlabelled, silently."""
    from rmroute.harness.assets import DataError, load_source

    path = _jsonl(tmp_path, [GOOD, row])
    with pytest.raises(DataError) as err:
        load_source(f"file:{path}")
    msg = str(err.value)
    assert msg.startswith(f"{path}:2: unknown field {key!r}")
    assert (f"did you mean {hint!r}?" in msg) if hint else ("did you mean" not in msg)


def test_unknown_field_in_a_json_file_names_the_record_index(tmp_path):
    from rmroute.harness.assets import DataError, load_source

    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, {**GOOD, "lable": "b"}]))
    with pytest.raises(DataError, match=r"d\.json\[1\]: unknown field 'lable'; did you mean 'label'\?"):
        load_source(f"file:{path}")


@pytest.mark.parametrize("name, content", [("e.jsonl", ""), ("e.jsonl", "\n\n  \n"), ("e.json", "[]")])
def test_empty_data_file_is_an_error(tmp_path, name, content):
    """Before: 0 pairs and exit 0."""
    from rmroute.harness.assets import DataError, load_source

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=rf"^{path}: no records"):
        load_source(f"file:{path}")


def test_empty_parquet_file_is_an_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rmroute.harness.assets import DataError, load_source

    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({k: pa.array([], pa.string()) for k in ("prompt", "response_a", "response_b")}), path)
    with pytest.raises(DataError, match="no records"):
        load_source(f"file:{path}")


@pytest.mark.parametrize("label", [1.0, 0.0, True, False, "A", "B", "1", [1], {"a": 1}])
def test_only_a_b_0_1_null_are_labels(tmp_path, label):
    """Before: 1.0 was taken as 'b' (1.0 == 1), 0.0 as 'a'."""
    from rmroute.harness.assets import DataError, load_source

    path = _jsonl(tmp_path, [{**GOOD, "label": label}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'label' must be 'a', 'b', 0, 1 or null"):
        load_source(f"file:{path}")


def test_every_layout_and_label_still_loads(tmp_path):
    """The accepted forms, across file types: labels a/b/0/1/null/absent, prompt/chosen/rejected, HH,
    the optional fields, parquet rows with nulls in optional columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rmroute.harness.assets import load_source

    convo = "\n\nHuman: hi\n\nAssistant:"
    rows = [
        {**GOOD, "label": "a"}, {**GOOD, "label": "b"}, {**GOOD, "label": 0}, {**GOOD, "label": 1},
        {**GOOD, "label": None}, {k: v for k, v in GOOD.items() if k != "label"},
        {"prompt": "q", "chosen": "good", "rejected": "bad", "id": "c", "domain": "math", "reference": "4",
         "metadata": {"k": 1}},
        {"chosen": convo + " yes", "rejected": convo + " no"},
    ]
    expect = ["a", "b", "a", "b", None, None, "a", "a"]
    assert [p.label for p in load_source(f"file:{_jsonl(tmp_path, rows)}")] == expect
    (tmp_path / "d.json").write_text(json.dumps(rows))
    assert [p.label for p in load_source(f"file:{tmp_path / 'd.json'}")] == expect
    chosen = next(p for p in load_source(f"file:{tmp_path / 'd.json'}") if p.id == "c")
    assert (chosen.domain, chosen.metadata, chosen.response_a) == ("math", {"k": 1, "reference": "4"}, "good")
    table = pa.Table.from_pylist([{**GOOD, "label": None, "reference": None}, {**GOOD, "label": "b", "reference": "7"}])
    pq.write_table(table, tmp_path / "d.parquet")
    loaded = load_source(f"file:{tmp_path / 'd.parquet'}")
    assert [p.label for p in loaded] == [None, "b"] and [p.metadata for p in loaded] == [{}, {"reference": "7"}]


def test_hub_records_keep_their_extra_columns_ignored():
    """hf: datasets have columns of their own (not typos): the layout's fields are read, the rest ignored."""
    from rmroute.harness.assets import record_to_pair

    pair = record_to_pair("hf:x:train[0]", {"prompt": "p", "chosen": "A", "rejected": "B", "score_chosen": 9.0},
                          default_id="x:train:0", strict=False)
    assert (pair.prompt, pair.response_a, pair.response_b, pair.label) == ("p", "A", "B", "a")


# ---- verifier-math -----------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", [math.nan, math.inf, -math.inf, True, [5], {"x": 5}, "no number here", "nan"])
def test_verifier_abstains_on_an_unusable_reference(tmp_path, reference):
    """Before: reference NaN scored both responses 0.0 (a 0/0 verdict instead of an abstention)."""
    from rmroute.harness.pipelines.score_cache import ScoreCache
    from rmroute.reward_models.verifier import MathVerifierRM

    rm = MathVerifierRM()
    rm.prepare([{"prompt": "p", "metadata": {"reference": reference}},
                {"prompt": "q", "metadata": {"reference": "#### 5"}}])
    values, report = ScoreCache(tmp_path / "scores").score(rm, ["p", "p", "q", "q"], ["5", "7", "5", "7"])
    assert np.isnan(values[:2]).all() and values[2:].tolist() == [1.0, 0.0]
    assert report.abstained == 2


def test_verifier_abstains_on_a_nan_reference_from_a_data_file(tmp_path):
    """The issue's case: ``"reference": NaN`` in a file: record (JSON allows NaN)."""
    from rmroute.reward_models.verifier import MathVerifierRM
    from rmroute.harness.assets import load_source

    path = _jsonl(tmp_path, ['{"prompt": "p", "response_a": "5", "response_b": "7", "reference": NaN}',
                             '{"prompt": "q", "response_a": "5", "response_b": "7", "reference": 5}'])
    pairs = load_source(f"file:{path}")
    rm = MathVerifierRM()
    rm.prepare(pairs)
    scores = rm.score([p.prompt for p in pairs] * 2, [p.response_a for p in pairs] + [p.response_b for p in pairs])
    assert np.isnan(scores[[0, 2]]).all() and scores[[1, 3]].tolist() == [1.0, 0.0]
    assert rm.key_extra("p") == ""  # the cache key of an abstention, as for no reference at all
