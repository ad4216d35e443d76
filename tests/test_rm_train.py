"""Reward-model training (rmroute.harness.pipelines.rm_train) on tiny models built from config.

The synthetic task is learnable only by looking at the END of a response: the gold response ends
with the marker word "good", the rejected one with "bad", after random filler. Scores are checked
independently through HFSeqClsRM, the backend that serves the trained folder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from rmroute.harness.core.errors import RmrouteError
from rmroute.harness.core.types import PreferencePair
from rmroute.reward_models.hf import HFSeqClsRM
from rmroute.harness.pipelines.rm_data import (
    PairEncoder,
    TrainConfigError,
    data_sha256,
    score_ids,
    select_pairs,
    split_validation,
)
from rmroute.harness.pipelines.rm_train import (
    TRAIN_RECORD,
    LengthBatchSampler,
    NotLearnedError,
    RMTrainConfig,
    TrainReport,
    _reward_config,
    _trainer_class,
    fingerprint,
    learning_problems,
    train_from_config,
    train_reward_model,
)
from tests.tiny_models import WORDS, build_seqcls, build_tiny_bert

FILLER = [w for w in WORDS if w not in ("good", "bad")]


def marker_pairs(n: int, seed: int, words: tuple[int, int], domains=("math", "chat"), prefix="p") -> list[PreferencePair]:
    """Pairs whose gold response ends in 'good' and rejected one in 'bad', after ``words`` filler words."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = " ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 6))) + " ?"
        body = lambda: " " + " ".join(rng.choice(FILLER) for _ in range(rng.randint(*words)))
        gold, bad = body() + " good .", body() + " bad ."
        label = "a" if rng.random() < 0.5 else "b"
        a, b = (gold, bad) if label == "a" else (bad, gold)
        out.append(PreferencePair(id=f"{prefix}{i}", domain=domains[i % len(domains)], prompt=prompt,
                                  response_a=a, response_b=b, label=label))
    return out


def gold_first(pairs):
    prompts = [p.prompt for p in pairs]
    chosen = [p.response_a if p.label == "a" else p.response_b for p in pairs]
    rejected = [p.response_b if p.label == "a" else p.response_a for p in pairs]
    return prompts, chosen, rejected


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {"bert": build_tiny_bert(root / "bert", seed=0), "llama_chat": build_seqcls(root / "llama_chat", chat=True, seed=0)}


def cfg_for(base, out, **kw) -> RMTrainConfig:
    defaults = {"base_model": str(base), "output_dir": str(out), "learning_rate": 1e-3, "batch_size": 16,
                "max_steps": 150, "eval_every": 10, "patience": 3, "max_length": 40, "threads": 1,
                "progress": False, "seed": 0}
    return RMTrainConfig(**{**defaults, **kw})


@pytest.fixture(scope="module")
def trained_bert(bases, tmp_path_factory):
    """Mixed lengths, max_length 40: about half of the pairs need cutting."""
    out = tmp_path_factory.mktemp("rm") / "bert-rm"
    pairs = marker_pairs(240, seed=0, words=(2, 45))
    report = train_reward_model(cfg_for(bases["bert"], out), pairs)
    return out, pairs, report


# ---- the trained folder ---------------------------------------------------------------------
def test_training_learns_and_writes_an_hf_folder(trained_bert):
    out, pairs, report = trained_bert
    assert {"config.json", "model.safetensors", "tokenizer.json", TRAIN_RECORD} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "staging folders left behind"
    # validation accuracy rose well above chance, and the report is consistent
    assert report.initial_val_accuracy < 0.8 and report.best_val_accuracy >= 0.9
    assert report.val_curve[0]["step"] == 0 and report.best_step in [c["step"] for c in report.val_curve]
    assert 0 < report.steps <= 150 and report.seconds_per_step > 0 and report.train_loss
    assert report.train_loss[-1][1] < report.train_loss[0][1]
    assert report.n_train + report.n_val == 240 and report.n_val > 0
    assert set(report.val_accuracy_by_domain) == {"math", "chat"}
    record = json.loads((out / TRAIN_RECORD).read_text())
    assert record["data"]["sha256"] == data_sha256(pairs) and record["report"]["best_step"] == report.best_step
    assert set(record["data"]["train_ids"]).isdisjoint(record["data"]["val_ids"])
    assert record["config"]["max_length"] == 40 and record["scoring"]["eos_token"] is None
    assert learning_problems(report) == []  # it learned, so the learning check passed it


def test_long_pairs_are_cut_not_dropped(trained_bert):
    _, _, report = trained_bert
    assert report.n_truncated_train > 0.3 * report.n_train  # many pairs were longer than max_length ...
    assert report.tokens_p95 > 40  # ... before cutting
    # ... and all of them reached the trainer (train_reward_model raises if TRL filtered any)
    assert report.n_train + report.n_val == 240


def test_hfseqcls_scores_prefer_gold_on_held_out_pairs(trained_bert):
    out, _, _ = trained_bert
    held_out = marker_pairs(60, seed=99, words=(2, 25), prefix="h")  # fit in 40 tokens: no truncation at scoring
    prompts, chosen, rejected = gold_first(held_out)
    rm = HFSeqClsRM(str(out), device="cpu", max_length=40)
    good, bad = rm.score(prompts, chosen), rm.score(prompts, rejected)
    assert rm.truncated == 0
    accuracy = float(np.mean(good > bad))
    assert accuracy >= 0.9, accuracy
    # the scorer sees exactly the training token ids: same scores through the training encoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ids, _, cut = PairEncoder(tok, 40).encode(prompts, chosen)
    assert not any(cut)
    np.testing.assert_allclose(score_ids(model, ids, tok.pad_token_id), good, rtol=1e-4, atol=1e-5)


# ---- token-level encoding -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bert", "llama_chat"])
def test_encoder_reproduces_hfseqcls_text_and_ids(bases, kind, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bases[kind])
    tok.chat_template = None  # what train_reward_model saves
    folder = tmp_path / "tok"
    tok.save_pretrained(folder)
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((bases[kind] / name).read_bytes())
    rm = HFSeqClsRM(str(folder), device="cpu", max_length=128)
    prompts = ["what is two plus two?", "Why is the cat good", "explain", ""]
    responses = [" the answer is four.", "because it is", "paris is the capital of france", " yes"]
    texts, special = rm.texts(prompts, responses)
    expected = rm._encode(texts, special)
    ids, lengths, cut = PairEncoder(tok, 128).encode(prompts, responses)
    assert ids == expected and lengths == [len(x) for x in expected] and not any(cut)
    if kind == "llama_chat":  # EOS appended as text, as TRL's add_eos does
        assert texts[0].endswith("four.[EOS]") and ids[0][-1] == tok.eos_token_id
    else:  # BERT: no EOS token, [CLS] ... [SEP]
        assert ids[0][0] == tok.cls_token_id and ids[0][-1] == tok.sep_token_id


def test_truncation_keeps_prompt_end_and_response_end(bases):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bases["bert"])
    piece = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    prompt = "one two three four five six seven eight ?"
    response = " " + " ".join(["cat dog"] * 20) + " the answer is four ."
    p_ids, r_ids = piece(prompt), piece(response)
    enc = PairEncoder(tok, max_length=16, prompt_min_tokens=4)
    (ids,), (length,), (cut,) = enc.encode([prompt], [response])
    assert cut and length == len(p_ids) + len(r_ids) + 2 and len(ids) == 16
    assert ids == [tok.cls_token_id] + p_ids[-4:] + r_ids[-10:] + [tok.sep_token_id]
    assert tok.decode(ids[-6:-1]) == "the answer is four ."
    # a short response keeps all of itself and as much of the prompt's end as fits
    (ids,), _, _ = enc.encode([prompt * 3], [" four ."])
    assert ids == [tok.cls_token_id] + piece(prompt * 3)[-12:] + piece(" four .") + [tok.sep_token_id]
    # response_keep="start" keeps the response's beginning instead
    (ids,), _, _ = PairEncoder(tok, 16, prompt_min_tokens=4, response_keep="start").encode([prompt], [response])
    assert ids == [tok.cls_token_id] + p_ids[-4:] + r_ids[:10] + [tok.sep_token_id]


def test_keeping_the_response_end_is_what_makes_long_pairs_learnable(bases, tmp_path):
    # every pair is longer than max_length; the marker survives only at the response's end
    pairs = marker_pairs(200, seed=1, words=(30, 40))
    ends = train_reward_model(cfg_for(bases["bert"], tmp_path / "end", max_length=24, max_steps=80), pairs)
    start_cfg = cfg_for(bases["bert"], tmp_path / "start", max_length=24, max_steps=40, patience=2, response_keep="start")
    with pytest.raises(NotLearnedError, match="training loss never left ln 2"):  # the marker is cut away
        train_reward_model(start_cfg, pairs)
    starts = train_reward_model(start_cfg.model_copy(update={"require_learning": False}), pairs, reuse=True)
    assert ends.n_truncated_train == ends.n_train and ends.n_train + ends.n_val == 200
    assert ends.best_val_accuracy >= 0.9 and starts.best_val_accuracy <= 0.8 and learning_problems(ends) == []


# ---- data selection -------------------------------------------------------------------------
def _domain_pairs(counts: dict[str, int], unlabelled: int = 0) -> list[PreferencePair]:
    out = [PreferencePair(id=f"{d}{i}", domain=d, prompt=f"q {d} {i // 2}", response_a="x", response_b="y", label="a")
           for d, n in counts.items() for i in range(n)]
    out += [PreferencePair(id=f"u{i}", domain="math", prompt="q", response_a="x", response_b="y") for i in range(unlabelled)]
    return out


def _by_domain(pairs):
    out: dict[str, int] = {}
    for p in pairs:
        out[p.domain] = out.get(p.domain, 0) + 1
    return out


def test_domain_mix_selects_the_largest_sample_with_the_given_shares():
    pairs = _domain_pairs({"math": 100, "chat": 50, "code": 30}, unlabelled=7)
    assert _by_domain(select_pairs(pairs, {}, None, 0)) == {"math": 100, "chat": 50, "code": 30}  # unlabelled left out
    assert _by_domain(select_pairs(pairs, {"math": 0.5, "chat": 0.5}, None, 0)) == {"math": 50, "chat": 50}
    assert _by_domain(select_pairs(pairs, {"math": 3, "chat": 1, "code": 0}, None, 0)) == {"math": 100, "chat": 33}
    assert _by_domain(select_pairs(pairs, {"math": 3, "chat": 1}, 40, 0)) == {"math": 30, "chat": 10}
    assert len(select_pairs(pairs, {}, 25, 0)) == 25
    # deterministic under the seed, whatever the input order; another seed draws other pairs
    a = select_pairs(pairs, {"math": 1, "chat": 1}, None, 3)
    shuffled = list(pairs)
    random.Random(0).shuffle(shuffled)
    assert [p.id for p in select_pairs(shuffled, {"math": 1, "chat": 1}, None, 3)] == [p.id for p in a]
    assert {p.id for p in select_pairs(pairs, {"math": 1, "chat": 1}, None, 4)} != {p.id for p in a}
    with pytest.raises(TrainConfigError, match=r"domain_mix\.physics: no labelled pairs of domain 'physics'.*math \(100\)"):
        select_pairs(pairs, {"physics": 1.0}, None, 0)


def test_validation_split_is_disjoint_by_prompt_and_stratified():
    pairs = _domain_pairs({"math": 100, "chat": 40})
    train, val = split_validation(pairs, 0.2, seed=0)
    assert len(train) + len(val) == 140
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in val})
    assert _by_domain(val) == {"math": 20, "chat": 8}
    assert [p.id for p in split_validation(pairs, 0.2, seed=0)[1]] == [p.id for p in val]
    assert split_validation(pairs, 0.0, seed=0) == (pairs, [])


# ---- YAML configs ---------------------------------------------------------------------------
def _write_pairs(path: Path, pairs: list[PreferencePair]) -> Path:
    with path.open("w") as fh:
        for p in pairs:
            fh.write(json.dumps({"id": p.id, "domain": p.domain, "prompt": p.prompt, "response_a": p.response_a,
                                 "response_b": p.response_b, "label": p.label}) + "\n")
    return path


def test_train_from_config_end_to_end_reuse_and_determinism(bases, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_pairs(tmp_path / "pairs.jsonl", marker_pairs(160, seed=2, words=(2, 12), domains=("math", "chat", "code")))
    text = (f"base_model: {bases['llama_chat']}\noutput_dir: out/rm\ndata: file:pairs.jsonl\n"
            "domain_mix: {math: 1, chat: 1}\nmax_length: 48\nlearning_rate: 0.003\nmax_steps: 60\n"
            "eval_every: 10\npatience: 2\nthreads: 1\nprogress: false\n")
    (tmp_path / "rm.yaml").write_text(text)
    report = train_from_config(tmp_path / "rm.yaml")
    assert report.train_domains.keys() == {"math", "chat"} and report.best_val_accuracy >= 0.8
    out = tmp_path / "out" / "rm"
    rm = HFSeqClsRM(str(out), device="cpu")
    assert rm.texts(["q"], [" a"])[0] == ["q a[EOS]"]  # the base's chat template was dropped: plain layout
    # same config and data: reused without training
    again = train_from_config(tmp_path / "rm.yaml", reuse=True)
    assert again.reused and again.best_step == report.best_step
    # same seed, another folder: the same training, step for step
    other = train_from_config(tmp_path / "rm.yaml", output_dir="out/rm2")
    assert other.val_curve == report.val_curve and other.train_loss == report.train_loss
    prompts, chosen, _ = gold_first(marker_pairs(8, seed=5, words=(2, 6)))
    np.testing.assert_array_equal(rm.score(prompts, chosen), HFSeqClsRM(str(tmp_path / "out" / "rm2"), device="cpu").score(prompts, chosen))


@pytest.mark.parametrize(
    "body, pattern",
    [
        ("output_dir: o\ndata: file:p.jsonl\nlearning_rte: 0.1\n", r"rm\.yaml:3: learning_rte: unknown key 'learning_rte'; allowed keys: .*learning_rate"),
        ("output_dir: o\ndata: file:p.jsonl\nlearning_rate: -1\n", r"rm\.yaml:3: learning_rate: .*greater than 0"),
        ("output_dir: o\ndata: file:p.jsonl\ndomain_mix:\n  math: -2\n", r"rm\.yaml:3: domain_mix: .*>= 0"),
        ("data: file:p.jsonl\n", r"rm\.yaml:1: output_dir: Field required"),
        ("output_dir: o\n", r"rm\.yaml:1: data: Field required"),
        ("output_dir: o\ndata: [file:p.jsonl, file:missing.jsonl]\n", r"rm\.yaml:2: data\[1\]: 'missing\.jsonl' not found \(tried .*missing\.jsonl\)"),
        ("output_dir: o\ndata: file:p.jsonl\ndomain_mix:\n  math: 1\n  physics: 1\n", r"rm\.yaml:5: domain_mix\.physics: no labelled pairs of domain 'physics'"),
        ("base_model: BASE\noutput_dir: o\ndata: file:p.jsonl\nmax_length: 4096\n", r"rm\.yaml:4: max_length: 4096 exceeds the model's 128 positions"),
        ("base_model: ./nowhere\noutput_dir: o\ndata: file:p.jsonl\n", r"rm\.yaml:1: base_model: './nowhere' is not a model folder"),
        ("base_model: BASE\noutput_dir: foreign\ndata: file:p.jsonl\n", r"rm\.yaml:2: output_dir: .*no rmroute training wrote"),
    ],
)
def test_config_errors_name_file_line_and_key(bases, tmp_path, monkeypatch, body, pattern):
    monkeypatch.chdir(tmp_path)
    _write_pairs(tmp_path / "p.jsonl", marker_pairs(20, seed=0, words=(2, 4)))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("not ours")
    (tmp_path / "rm.yaml").write_text(body.replace("BASE", str(bases["bert"])))
    with pytest.raises(RmrouteError, match=pattern) as err:
        train_from_config(tmp_path / "rm.yaml")
    assert str(tmp_path / "rm.yaml") in str(err.value)
    assert (tmp_path / "foreign" / "keep.txt").is_file()


def test_fingerprint_ignores_where_the_model_goes_but_not_what_it_learns():
    pairs = _domain_pairs({"math": 4})
    a = RMTrainConfig(output_dir="x")
    assert fingerprint(a, pairs) == fingerprint(RMTrainConfig(output_dir="y", progress=False), pairs)
    assert fingerprint(a, pairs) != fingerprint(RMTrainConfig(output_dir="x", seed=1), pairs)
    assert fingerprint(a, pairs) != fingerprint(a, pairs[:3])


# ---- batching by length ---------------------------------------------------------------------
def test_length_batches_group_similar_lengths_in_random_order():
    lengths = np.random.default_rng(0).integers(5, 300, size=100)
    sampler = LengthBatchSampler(lengths, batch_size=16, seed=0)
    first = sampler.batches()
    assert [len(b) for b in first] == [16] * 6 + [4]  # the partial batch stays last
    assert sorted(np.concatenate(first).tolist()) == list(range(100))
    spread = np.mean([np.ptp(lengths[b]) for b in first[:-1]])
    assert spread < 0.25 * np.ptp(lengths)  # similar lengths within a batch
    assert [b.tolist() for b in LengthBatchSampler(lengths, 16, 0).batches()] == [b.tolist() for b in first]
    sampler.set_epoch(1)
    assert [b.tolist() for b in sampler.batches()] != [b.tolist() for b in first]
    assert list(LengthBatchSampler(lengths, 16, 0)) == np.concatenate(first).tolist()


def test_trainer_draws_its_batches_from_the_length_sampler(bases, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(bases["bert"])
    model = AutoModelForSequenceClassification.from_pretrained(bases["bert"], num_labels=1)
    rng = np.random.default_rng(1)
    lengths = rng.integers(3, 60, size=40).tolist()
    rows = {"chosen_ids": [[2] + [7] * (n - 2) + [3] for n in lengths], "rejected_ids": [[2, 8, 3]] * 40}
    sampler = LengthBatchSampler(lengths, batch_size=8, seed=0)
    cfg = cfg_for(bases["bert"], tmp_path / "rm", batch_size=8, max_length=64)
    args = _reward_config(RewardConfig, cfg, Path(cfg.output_dir), 10)
    trainer = _trainer_class(RewardTrainer, sampler)(model=model, args=args, train_dataset=Dataset.from_dict(rows),
                                                     processing_class=tok)
    widths = [batch["input_ids"].shape[1] for batch in trainer.get_train_dataloader()]
    expected = [max(lengths[i] for i in b) for b in LengthBatchSampler(lengths, 8, 0).batches()]
    assert widths == expected


def test_hfseqcls_cuts_a_trained_rm_exactly_as_training_did(trained_bert):
    """Long items: the scorer keeps [CLS]/[SEP], the prompt's end and the response's end, like training."""
    out, _, _ = trained_bert
    long_pairs = marker_pairs(20, seed=7, words=(40, 60), prefix="L")
    prompts, chosen, _ = gold_first(long_pairs)
    rm = HFSeqClsRM(str(out), device="cpu", max_length=40)
    with pytest.warns(UserWarning, match="longer than max_length=40"):
        scores = rm.score(prompts, chosen)
    assert rm.truncated == 20
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ids, _, cut = PairEncoder(tok, 40).encode(prompts, chosen)  # the training layout, defaults as in training
    assert all(cut) and all(x[0] == tok.cls_token_id and x[-1] == tok.sep_token_id for x in ids)
    np.testing.assert_allclose(score_ids(model, ids, tok.pad_token_id), scores, rtol=1e-4, atol=1e-5)
    assert rm.identity().endswith(":train-layout")


def test_exclude_kinds_leaves_those_pairs_out(bases, tmp_path):
    import dataclasses

    pairs = marker_pairs(60, seed=3, words=(2, 10))
    kinds = ["truncated", "padded-wrong", "neighbour"]
    pairs = [dataclasses.replace(p, metadata={"kind": kinds[i % 3]}) for i, p in enumerate(pairs)]
    report = train_reward_model(cfg_for(bases["bert"], tmp_path / "rm", max_steps=2, eval_every=1, require_learning=False,
                                        exclude_kinds=["truncated", "neighbour"]), pairs)
    assert report.n_train + report.n_val == 20  # only the padded-wrong third is left
    record = json.loads((tmp_path / "rm" / TRAIN_RECORD).read_text())
    kept = set(record["data"]["train_ids"]) | set(record["data"]["val_ids"])
    assert kept == {p.id for p in pairs if p.metadata["kind"] == "padded-wrong"}


# ---- the learning check -----------------------------------------------------------------------
def _report(losses=(), n_val=0, acc=None, by_domain=None, val_domains=None) -> TrainReport:
    """A TrainReport with only what the learning check reads filled in."""
    return TrainReport(
        output_dir="out", base_model="b", steps=60, best_step=15, stopped_early=False, best_val_accuracy=acc,
        best_val_loss=None, initial_val_accuracy=None, val_accuracy_by_domain=by_domain or {}, wall_seconds=0.0,
        train_seconds=0.0, eval_seconds=0.0, seconds_per_step=0.0, n_pairs_given=0, n_unlabelled=0, n_train=0,
        n_val=n_val, train_domains={}, val_domains=val_domains or {}, n_truncated_train=0, n_truncated_val=0,
        tokens_p50=0, tokens_p95=0, threads=1, device="cpu", train_loss=[[10 * (i + 1), x] for i, x in enumerate(losses)],
    )


def test_loss_rule_flags_a_loss_that_never_left_ln2():
    ln2 = 0.6931471805599453
    # the logged losses of the old minilm-knowledge run: all within 0.001 of ln 2
    dead = learning_problems(_report(losses=[0.69294, 0.69322, 0.69257, 0.69303]))
    assert len(dead) == 1 and "never left ln 2" in dead[0] and "all 4 logged losses" in dead[0]
    # one logged loss 0.011 away from ln 2 is enough to have left it (epsilon 0.01), either side
    assert learning_problems(_report(losses=[0.6929, ln2 - 0.011])) == []
    assert learning_problems(_report(losses=[ln2 + 0.011, 0.6929])) == []
    assert learning_problems(_report(losses=[ln2 - 0.0099, ln2 + 0.0099])) != []
    # the minilm-math run's losses left it
    assert learning_problems(_report(losses=[0.688, 0.641, 0.501, 0.392])) == []
    assert learning_problems(_report()) == []  # no logged loss, no validation: nothing to judge


@pytest.mark.parametrize("n", [49, 120])
def test_validation_rule_is_a_wilson_lower_bound_above_chance(n):
    """Flagged exactly when scipy's Wilson 95% lower bound of k/n is <= 0.5, for every k."""
    from scipy.stats import binomtest

    for k in range(n + 1):
        lower = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson").low
        flagged = learning_problems(_report(n_val=n, acc=k / n, by_domain={"d": k / n}, val_domains={"d": n}))
        assert bool(flagged) == (lower <= 0.5), (k, n, lower)
    # the old minilm-knowledge run: 67 of 120 (0.558) is within chance's reach
    msg = learning_problems(_report(n_val=120, acc=67 / 120, by_domain={"knowledge": 0.583, "commonsense": 0.533},
                                    val_domains={"knowledge": 60, "commonsense": 60}))[0]
    assert "not above chance: 0.558 on 120 pairs at step 15" in msg and "knowledge 0.583 (n=60)" in msg


def test_validation_rule_needs_every_domain_above_chance():
    # 95 of 120 overall is far above chance, but one of its two domains is at chance
    msg = learning_problems(_report(n_val=120, acc=95 / 120, by_domain={"math": 1.0, "chat": 0.5},
                                    val_domains={"math": 60, "chat": 60}))
    assert len(msg) == 1 and "chat not above 0.5" in msg[0]


def test_an_rm_that_cannot_learn_fails_loudly_unless_allowed(bases, tmp_path, monkeypatch):
    """Labels at random (the marker says nothing about which response is gold) and a learning rate
    of 1e-9: the loss stays at ln 2, validation at chance; `rmroute rm train` names the config and
    the evidence, keeps the folder, and `require_learning: false` keeps the RM."""
    import dataclasses

    monkeypatch.chdir(tmp_path)
    rng = random.Random(4)
    pairs = [dataclasses.replace(p, label=rng.choice("ab")) for p in marker_pairs(160, seed=4, words=(2, 12))]
    _write_pairs(tmp_path / "pairs.jsonl", pairs)
    body = (f"base_model: {bases['bert']}\noutput_dir: out/rm\ndata: file:pairs.jsonl\nmax_length: 32\n"
            "learning_rate: 1.0e-9\nmax_steps: 20\neval_every: 5\npatience: 0\neval_fraction: 0.3\nthreads: 1\nprogress: false\n")
    (tmp_path / "rm.yaml").write_text(body)
    with pytest.raises(NotLearnedError) as err:
        train_from_config(tmp_path / "rm.yaml")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'rm.yaml'}: the RM trained into out/rm did not learn: ")
    assert "training loss never left ln 2" in msg and "validation accuracy is not above chance" in msg
    assert "`require_learning: false`" in msg and (tmp_path / "out" / "rm" / TRAIN_RECORD).is_file()
    # reused from its folder, it is checked again
    with pytest.raises(NotLearnedError):
        train_from_config(tmp_path / "rm.yaml", reuse=True)
    # the opt-out keeps it, without retraining (the key does not change what is learned)
    kept = train_from_config(tmp_path / "rm.yaml", reuse=True, require_learning=False)
    assert kept.reused and learning_problems(kept)
    # the same data with a working learning rate and true labels learns and passes
    _write_pairs(tmp_path / "pairs.jsonl", marker_pairs(160, seed=4, words=(2, 12)))
    learned = train_from_config(tmp_path / "rm.yaml", learning_rate=3e-3, max_steps=60, output_dir="out/rm2")
    assert learned.best_val_accuracy >= 0.8 and learning_problems(learned) == []
