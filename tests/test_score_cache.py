"""The score cache: computed once, resumable after a kill, failures isolated, invalidation per RM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from rmroute.harness.cli import main
import pytest

from rmroute.harness.core.errors import ScoreError
from rmroute.harness.pipelines.score_cache import CacheWarning, ScoreCache, score_key, score_pairs
from rmroute.harness.core.types import PreferencePair
from tests.conftest import REPO


class CountingRM:
    """Score = number of characters of the response (+ offset); counts every item it scores."""

    def __init__(self, name="count", revision="r1", offset=0.0, fail_on=(), nan_on=()):
        self.name, self.cost, self.revision, self.offset = name, 0.0, revision, offset
        self.fail_on, self.nan_on = set(fail_on), set(nan_on)
        self.calls = 0

    def identity(self):
        return f"counting:{self.name}@{self.revision}"

    def score(self, prompts, responses):
        self.calls += len(prompts)
        if self.fail_on & set(responses):
            raise RuntimeError(f"cannot score {sorted(self.fail_on & set(responses))}")
        return np.array([np.nan if r in self.nan_on else len(r) + self.offset for r in responses], dtype=float)


def pairs(n):
    return [PreferencePair(id=f"p{i}", domain="d", prompt=f"prompt {i}", response_a="a" * (i + 1),
                           response_b="b" * (i % 3), label="a") for i in range(n)]


def test_second_run_scores_nothing(tmp_path):
    rm = CountingRM()
    a, b, reports = score_pairs(ScoreCache(tmp_path), [rm], pairs(20), chunk_size=7, show_progress=False)
    assert rm.calls == 40 and reports[0].scored == 40
    np.testing.assert_array_equal(a[:, 0], [i + 1 for i in range(20)])
    np.testing.assert_array_equal(b[:, 0], [i % 3 for i in range(20)])
    again = CountingRM()
    a2, b2, reports2 = score_pairs(ScoreCache(tmp_path), [again], pairs(20), show_progress=False)  # a fresh process view
    assert again.calls == 0 and reports2[0].cached == 40
    np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(b, b2)


def test_duplicates_in_input_are_scored_once(tmp_path):
    rm = CountingRM()
    values, report = ScoreCache(tmp_path).score(rm, ["p"] * 5, ["same"] * 5)
    assert rm.calls == 1 and values.tolist() == [4.0] * 5


def test_failures_are_isolated_and_recorded(tmp_path):
    bad = CountingRM(name="bad", fail_on={"aaa"}, nan_on={"aaaaa"})
    good = CountingRM(name="good")
    a, b, reports = score_pairs(ScoreCache(tmp_path), [bad, good], pairs(6), chunk_size=4, show_progress=False)
    assert np.isnan(a[2, 0]) and np.isnan(a[4, 0])  # 'aaa' raised, 'aaaaa' returned NaN
    assert np.isfinite(np.delete(a[:, 0], [2, 4])).all() and np.isfinite(a[:, 1]).all()
    rep = {r.rm: r for r in reports}
    assert rep["bad"].abstained == 2 and rep["good"].abstained == 0
    assert any("RuntimeError: cannot score ['aaa']" in e for e in rep["bad"].errors)
    cache = ScoreCache(tmp_path)
    len(cache)
    assert cache.get(score_key(bad.identity(), "prompt 2", "aaa"))[1].startswith("RuntimeError")


def test_rm_that_cannot_load_fails_loudly_after_the_others_are_scored(tmp_path):
    class Broken(CountingRM):
        def load(self):
            raise OSError("weights missing")

    broken, good = Broken(name="broken"), CountingRM(name="good")
    with pytest.raises(ScoreError, match=r"RM 'broken' cannot load: OSError: weights missing"):
        score_pairs(ScoreCache(tmp_path), [broken, good], pairs(3), show_progress=False)
    assert broken.calls == 0 and good.calls == 6
    assert len(ScoreCache(tmp_path)) == 6  # the good RM's scores are kept; nothing cached for the broken one
    # `rmroute score` asks for a report instead of an exception
    a, _, reports = score_pairs(ScoreCache(tmp_path), [broken, good], pairs(3), show_progress=False,
                                raise_on_failure=False)
    assert np.isnan(a[:, 0]).all() and np.isfinite(a[:, 1]).all()
    assert "weights missing" in reports[0].failed and reports[0].abstention_rate == 1.0


def test_corrupt_part_is_set_aside_and_rescored_not_read_as_abstentions(tmp_path):
    """A 0-byte part used to raise inside score(), and score_pairs turned that into 'every RM abstains'."""
    rm = CountingRM()
    a, b, _ = score_pairs(ScoreCache(tmp_path), [rm], pairs(8), chunk_size=4, show_progress=False)
    parts = sorted(tmp_path.glob("part-*.parquet"))
    assert len(parts) == 4 and all((tmp_path / (p.name + ".sha256")).is_file() for p in parts)
    parts[0].write_bytes(b"")  # truncated to nothing
    with open(parts[1], "r+b") as fh:  # same size, one byte flipped: only the checksum can tell
        fh.seek(40)
        byte = fh.read(1)
        fh.seek(40)
        fh.write(bytes([byte[0] ^ 0xFF]))
    again = CountingRM()
    with pytest.warns(CacheWarning, match=r"part-.*\.parquet is corrupt"):
        a2, b2, reports = score_pairs(ScoreCache(tmp_path), [again], pairs(8), chunk_size=4, show_progress=False)
    np.testing.assert_array_equal(a2, a)
    np.testing.assert_array_equal(b2, b)
    assert again.calls == 8 and reports[0].abstained == 0  # two parts of 4 items rescored
    assert sorted(p.name for p in (tmp_path / "corrupt").glob("part-*.parquet")) == sorted(p.name for p in parts[:2])


def test_unreachable_transport_fails_the_rm_and_caches_nothing(tmp_path):
    class Down(CountingRM):
        def score(self, prompts, responses):
            self.calls += len(prompts)
            raise ConnectionRefusedError("[Errno 111] Connection refused: http://127.0.0.1:9/get_reward")

    down = Down(name="remote")
    with pytest.raises(ScoreError, match=r"RM 'remote' is broken: ConnectionRefusedError: .*127\.0\.0\.1:9"):
        ScoreCache(tmp_path).score(down, ["p", "q"], ["x", "y"])
    assert len(ScoreCache(tmp_path)) == 0  # a later run with the server up scores them


def test_an_rm_raising_on_every_item_is_broken_not_abstaining(tmp_path):
    class Raises(CountingRM):
        def score(self, prompts, responses):
            raise RuntimeError("CUDA error: device-side assert")

    with pytest.raises(ScoreError, match=r"raised on every one of 4 items"):
        ScoreCache(tmp_path).score(Raises(name="r"), ["p"] * 4, ["a", "bb", "ccc", "dddd"])
    assert len(ScoreCache(tmp_path)) == 0


def test_a_lone_surrogate_is_one_abstention_not_a_whole_file(tmp_path):
    class Utf8RM(CountingRM):  # like a tokenizer: cannot encode a lone surrogate
        def score(self, prompts, responses):
            for r in responses:
                r.encode("utf-8")
            return super().score(prompts, responses)

    ps = pairs(5)
    ps[2] = PreferencePair(id="p2", domain="d", prompt="prompt 2", response_a="bad \ud800 text",
                           response_b="b", label="a")
    a, b, reports = score_pairs(ScoreCache(tmp_path), [Utf8RM()], ps, show_progress=False)
    assert np.isnan(a[2, 0]) and np.isfinite(np.delete(a[:, 0], 2)).all() and np.isfinite(b[:, 0]).all()
    assert reports[0].abstained == 1 and reports[0].nan == 1
    assert "UnicodeEncodeError" in reports[0].errors[0]


def test_changed_revision_invalidates_only_that_rm(tmp_path):
    one, two = CountingRM(name="one"), CountingRM(name="two")
    score_pairs(ScoreCache(tmp_path), [one, two], pairs(10), show_progress=False)
    one_new, two_same = CountingRM(name="one", revision="r2", offset=100), CountingRM(name="two")
    a, _, _ = score_pairs(ScoreCache(tmp_path), [one_new, two_same], pairs(10), show_progress=False)
    assert one_new.calls == 20 and two_same.calls == 0
    assert a[0, 0] == 101.0


def test_resume_after_a_killed_run(tmp_path):
    cache_dir = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        import numpy as np
        from rmroute.harness.pipelines.score_cache import ScoreCache
        from tests.test_score_cache import CountingRM

        class Slow(CountingRM):
            def score(self, prompts, responses):
                time.sleep(0.15)
                return super().score(prompts, responses)

        prompts = [f"prompt {{i}}" for i in range(400)]
        responses = [f"response {{i}}" for i in range(400)]
        ScoreCache({str(cache_dir)!r}).score(Slow(), prompts, responses, chunk_size=10)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(cache_dir.glob("part-*.parquet"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(ScoreCache(cache_dir))
    assert 50 <= done_before < 400  # killed part-way: whole chunks survived, the rest did not
    rm = CountingRM()
    prompts = [f"prompt {i}" for i in range(400)]
    responses = [f"response {i}" for i in range(400)]
    values, report = ScoreCache(cache_dir).score(rm, prompts, responses, chunk_size=50)
    assert rm.calls == 400 - done_before and report.cached == done_before
    np.testing.assert_array_equal(values, [len(r) for r in responses])


def test_compact_keeps_every_score(tmp_path):
    rm = CountingRM()
    cache = ScoreCache(tmp_path)
    values, _ = cache.score(rm, [f"p{i}" for i in range(30)], [f"r{i}" for i in range(30)], chunk_size=4)
    assert len(list(tmp_path.glob("part-*.parquet"))) == 8
    cache.compact()
    assert len(list(tmp_path.glob("part-*.parquet"))) == 1
    again = CountingRM()
    v2, _ = ScoreCache(tmp_path).score(again, [f"p{i}" for i in range(30)], [f"r{i}" for i in range(30)])
    assert again.calls == 0 and np.array_equal(values, v2)


def test_cli_score_end_to_end(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    rows = [
        {"id": "m1", "domain": "math", "prompt": "What is 6 times 7?", "response_a": "6*7 = 42\\n#### 42",
         "response_b": "#### 41", "label": "a", "reference": "42"},
        {"id": "c1", "domain": "chat", "prompt": "Name the capital of France.", "response_a": "Paris is the capital of France.",
         "response_b": "Berlin.", "label": "a"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = tmp_path / "score.yaml"
    cfg.write_text(f"kind: replay\nsuite: s\nreward_models: [length, lexical-overlap, verifier-math]\ndata: {{test: 'file:{data}'}}\n")
    assert main(["score", str(cfg), "--cache", str(tmp_path / "c"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_pairs"] == 2 and out["accuracy"]["length"] == 1.0
    # verifier: right on the math pair (1 vs 0), abstains on the chat pair (no reference) -> NaN margin, not correct
    assert out["accuracy"]["verifier-math"] == 0.5
    assert [r["scored"] for r in out["reports"]] == [4, 4, 4]
    assert main(["score", str(cfg), "--cache", str(tmp_path / "c"), "--json"]) == 0
    assert [r["cached"] for r in json.loads(capsys.readouterr().out)["reports"]] == [4, 4, 4]
