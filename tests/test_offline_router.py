"""BayesianRouter's offline stage: labels, losses (against hand computations), bundles, featurizers,
the embedding cache, and small end-to-end trainings on synthetic data where the answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rmroute.harness.core.testing import check_featurizer
from rmroute.routers.featurize import (
    EmbeddingCache,
    HashingEncoder,
    PairEncoderFeaturizer,
    PromptEncoderFeaturizer,
)
from rmroute.harness.pipelines.offline_model import (
    BundleError,
    OfflineBundle,
    OfflineTrainSettings,
    _make_net,
    bt_balance_weights,
    bt_loss,
    bt_triples,
    cls_balance_weights,
    cls_loss,
    margin_scales,
    reg_loss,
    reg_targets,
    right_matrix,
    routing_accuracy,
    save_bundle,
    train_offline_router,
)

torch = pytest.importorskip("torch")
NAN = float("nan")


# ---- labels -----------------------------------------------------------------------------------
def toy_labels():
    """4 pairs x 3 RMs: mixed (with an abstention), all right, all wrong (with a tie), mixed."""
    gold = np.array([1, -1, 1, -1])
    margins = np.array([
        [2.0, -1.0, NAN],   # RM0 right, RM1 wrong, RM2 abstains (wrong)
        [-0.5, -3.0, -1.0],  # all right (gold B)
        [-1.0, 0.0, -2.0],  # all wrong (RM1 tie counts as wrong)
        [1.0, -2.0, -0.1],  # RM1, RM2 right, RM0 wrong
    ])
    return margins, gold


def test_right_matrix_and_bt_triples():
    margins, gold = toy_labels()
    right = right_matrix(margins, gold)
    assert right.tolist() == [[True, False, False], [True, True, True], [False, False, False], [False, True, True]]
    triples = {tuple(t) for t in bt_triples(right).tolist()}
    # every (pair, i right, j wrong); the all-right pair 1 and the all-wrong pair 2 give none
    assert triples == {(0, 0, 1), (0, 0, 2), (3, 1, 0), (3, 2, 0)}
    # an unlabelled pair is never right
    assert not right_matrix(np.array([[1.0, -1.0]]), np.array([0])).any()


def test_balance_weights_by_hand():
    # RM0 beats RM1 three times, RM1 beats RM0 once; RM2 beats RM0 twice and never loses to it
    t = np.array([[0, 0, 1], [1, 0, 1], [2, 0, 1], [3, 1, 0], [4, 2, 0], [5, 2, 0]])
    w = bt_balance_weights(t, 3)
    assert np.allclose(w, [1 / 3, 1 / 3, 1 / 3, 1.0, 0.0, 0.0])
    # classification: RM0 right 1 of 4 -> right weighs 4/(2*1) = 2, wrong 4/(2*3) = 2/3; RM1 always right -> 1
    right = np.array([[1, 1], [0, 1], [0, 1], [0, 1]], dtype=bool)
    assert np.allclose(cls_balance_weights(right), [[2, 1], [2 / 3, 1], [2 / 3, 1], [2 / 3, 1]])


def test_regression_targets_by_hand():
    margins, gold = toy_labels()
    scales = margin_scales(margins)
    col0 = np.array([2.0, -0.5, -1.0, 1.0])
    assert scales[0] == pytest.approx(math.sqrt(((col0 - col0.mean()) ** 2).mean()))
    col2 = np.array([-1.0, -2.0, -0.1])  # the NaN is left out
    assert scales[2] == pytest.approx(math.sqrt(((col2 - col2.mean()) ** 2).mean()))
    y = reg_targets(margins, gold, scales)
    assert y[1, 1] == pytest.approx(3.0 / scales[1])  # gold B, margin -3: +3 towards the gold response
    assert y[3, 0] == pytest.approx(-1.0 / scales[0])
    assert np.isnan(y[0, 2])


# ---- losses against a hand computation ----------------------------------------------------------
def _cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def test_losses_match_hand_computation_on_a_3rm_toy_batch():
    margins, gold = toy_labels()
    margins, gold = margins[[0, 3]], gold[[0, 3]]  # the two pairs that carry BT signal
    x = [[0.6, 0.8], [1.0, 0.0]]  # unit contexts
    e = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]
    c, cb = [[0.0, 1.0], [1.0, 1.0], [3.0, -4.0]], [0.1, -0.2, 0.3]
    r, rb = [[2.0, 0.0], [0.0, -1.0], [1.0, 1.0]], [0.5, 0.0, -0.5]
    net = _make_net(4, 2, 3, {"bt": 1.0, "cls": 1.0, "reg": 1.0}, None)
    with torch.no_grad():
        for name, val in (("bt", e), ("cls", c), ("cls_bias", cb), ("reg", r), ("reg_bias", rb)):
            getattr(net, name).copy_(torch.tensor(val, dtype=torch.float32))
    s_bt, logit, pred = net.heads(torch.tensor(x, dtype=torch.float32))

    s = [[_cos(xi, ek) for ek in e] for xi in x]
    z = [[_cos(xi, ck) + bk for ck, bk in zip(c, cb)] for xi in x]
    p = [[_cos(xi, rk) + bk for rk, bk in zip(r, rb)] for xi in x]
    assert np.allclose(s_bt.detach().numpy(), s, atol=1e-6)
    assert np.allclose(logit.detach().numpy(), z, atol=1e-6)
    assert np.allclose(pred.detach().numpy(), p, atol=1e-6)

    right = right_matrix(margins, gold)  # [[T, F, F], [F, T, T]]
    triples = bt_triples(right)
    softplus = lambda v: math.log(1.0 + math.exp(v))
    hand_bt = [softplus(-(s[0][0] - s[0][1])), softplus(-(s[0][0] - s[0][2])),
               softplus(-(s[1][1] - s[1][0])), softplus(-(s[1][2] - s[1][0]))]
    assert float(bt_loss(s_bt, triples).detach()) == pytest.approx(sum(hand_bt) / 4, abs=1e-6)
    w = [0.5, 1.0, 2.0, 0.0]
    assert float(bt_loss(s_bt, triples, np.array(w)).detach()) == pytest.approx(
        sum(a * b for a, b in zip(w, hand_bt)) / sum(w), abs=1e-6)

    sig = lambda v: 1.0 / (1.0 + math.exp(-v))
    y = right.astype(float)
    bce = [[-(y[i][k] * math.log(sig(z[i][k])) + (1 - y[i][k]) * math.log(1 - sig(z[i][k]))) for k in range(3)] for i in range(2)]
    assert float(cls_loss(logit, right).detach()) == pytest.approx(sum(map(sum, bce)) / 6, abs=1e-6)

    scales = np.array([2.0, 0.5, 1.0])
    target = reg_targets(margins, gold, scales)  # [[1, -2, nan], [-0.5, 4, 0.1]]
    assert np.allclose(target, [[1.0, -2.0, NAN], [-0.5, 4.0, 0.1]], equal_nan=True)
    l1 = [abs(p[0][0] - 1.0), abs(p[0][1] + 2.0), abs(p[1][0] + 0.5), abs(p[1][1] - 4.0), abs(p[1][2] - 0.1)]
    assert float(reg_loss(pred, target).detach()) == pytest.approx(sum(l1) / 5, abs=1e-6)

    # no BT signal at all (every RM right or every RM wrong) -> zero loss, still differentiable
    none = bt_loss(s_bt, bt_triples(np.array([[True] * 3, [False] * 3])))
    assert float(none.detach()) == 0.0 and none.requires_grad


def test_routing_accuracy_counts_only_pairs_with_a_right_rm():
    right = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], dtype=bool)
    assert routing_accuracy(right, np.array([0, 0, 1, 1])) == pytest.approx(2 / 3)


# ---- synthetic data: one RM is right exactly on one domain --------------------------------------
def synthetic(n=900, k=3, dim=24, seed=0):
    """Domain d's features carry a bump on coordinate d; RM d is right on every pair of domain d and
    the other RMs are right with probability 0.3, so every single RM is right on ~53% of pairs."""
    rng = np.random.default_rng(seed)
    dom = rng.integers(0, k, n)
    feats = 0.5 * rng.normal(size=(n, dim))
    feats[np.arange(n), dom] += 2.0
    right = rng.random((n, k)) < 0.3
    right[np.arange(n), dom] = True
    gold = np.where(rng.random(n) < 0.5, 1, -1)
    margins = np.where(right, 1.0, -1.0) * gold[:, None] * rng.uniform(0.1, 2.0, (n, k))
    return feats, margins, gold, dom


def test_end_to_end_router_learns_which_rm_is_right_on_which_domain(tmp_path):
    feats, margins, gold, dom = synthetic()
    tr, te = slice(0, 600), slice(600, None)
    res = train_offline_router(feats[tr], margins[tr], gold[tr], OfflineTrainSettings(dim=16), seed=0,
                               strata=[str(d) for d in dom[tr]])
    bundle = OfflineBundle.load(save_bundle(tmp_path / "b", res, ["rm0", "rm1", "rm2"],
                                            {"name": "none", "params": {}, "identity": None}, "hash"))
    right = right_matrix(margins[te], gold[te])
    acc = routing_accuracy(right, bundle.argmax(bundle.features_to_contexts(feats[te])))
    best_single = max(routing_accuracy(right, np.full(right.shape[0], k)) for k in range(3))
    assert best_single < 0.65  # chance level of a fixed RM: 1/3 + 2/3 * 0.3
    assert acc > 0.95, (acc, res.metrics)
    assert res.metrics["val_routing_accuracy"] > 0.9
    # the prior mean alone routes the same way (what bayesian-offline does with this bundle)
    X = bundle.features_to_contexts(feats[te])
    assert np.array_equal(np.argmax(X @ bundle.prior_means().T, axis=1), bundle.argmax(X))


def test_training_is_deterministic_under_a_seed():
    feats, margins, gold, _ = synthetic(n=200)
    settings = OfflineTrainSettings(dim=8, epochs=5, heads={"bt": 1.0, "cls": 0.5, "reg": 0.5}, balance_bt=True, balance_cls=True)
    a = train_offline_router(feats, margins, gold, settings, seed=3)
    b = train_offline_router(feats, margins, gold, settings, seed=3)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert [h["val_acc"] for h in a.history] == [h["val_acc"] for h in b.history]


# ---- featurizers and the embedding cache ------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from tests.tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def test_featurizers_pass_the_conformance_check(tiny_bert, tmp_path):
    for factory in (PairEncoderFeaturizer, PromptEncoderFeaturizer):
        check_featurizer(factory, model=str(tiny_bert), cache_dir=str(tmp_path / "emb"))
        check_featurizer(factory, model=str(tiny_bert), pooling="last", cache_dir=str(tmp_path / "emb"))
        check_featurizer(factory, model="hash:32")


def test_pair_feature_is_mean_and_absdiff_and_symmetric(tiny_bert, tmp_path):
    f = PairEncoderFeaturizer(model=str(tiny_bert), cache_dir=str(tmp_path))
    prompts, a, b = ["what is two plus two ?", "name a city"], ["four", "paris"], ["five", "the dog"]
    out = f.embed_pairs(prompts, a, b)
    h1 = f.encode_texts([f.format(p, r) for p, r in zip(prompts, a)])
    h2 = f.encode_texts([f.format(p, r) for p, r in zip(prompts, b)])
    assert out.shape == (2, f.dim) and f.dim == 2 * 32 and out.dtype == np.float64
    assert np.allclose(out, np.concatenate([(h1 + h2) / 2, np.abs(h1 - h2)], axis=1))
    assert np.allclose(out, f.embed_pairs(prompts, b, a))
    assert np.allclose(np.linalg.norm(h1, axis=1), 1.0, atol=1e-5)


def test_mean_pooling_matches_a_hand_pooled_forward_pass(tiny_bert, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    f = PairEncoderFeaturizer(model=str(tiny_bert), normalize=False, cache_dir=str(tmp_path))
    texts = ["the cat is good", "what is the capital of france ? paris is the capital"]
    got = f.encode_texts(texts)  # batched and padded together
    tok, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    for i, t in enumerate(texts):
        ids = tok(t, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**ids).last_hidden_state[0]
        assert np.allclose(got[i], hidden.mean(0).numpy(), atol=1e-5)


class CountingEncoder(HashingEncoder):
    cacheable = True

    def __init__(self, n=8, fail_on_call=None):
        super().__init__(n)
        self.calls, self.seen, self.fail_on_call = 0, [], fail_on_call

    def encode(self, texts):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("killed")
        self.seen.extend(texts)
        return super().encode(texts)


def test_embedding_cache_encodes_each_text_once_and_resumes(tmp_path):
    texts = ["a b", "c d", "a b", "e f", "g h", "c d", "i j"]
    enc = CountingEncoder()
    cache = EmbeddingCache(tmp_path)
    first, rep = cache.embed(enc, texts, chunk_size=2)
    assert sorted(enc.seen) == sorted(set(texts)) and rep.computed == 5 and rep.cached == 2
    again, rep2 = EmbeddingCache(tmp_path).embed(enc, texts)  # a fresh instance reads the parts on disk
    assert rep2.computed == 0 and np.array_equal(first, again)
    assert np.allclose(first, HashingEncoder(8).encode(texts))
    # another encoder identity never reads these rows
    other = CountingEncoder(n=4)
    EmbeddingCache(tmp_path).embed(other, ["a b"])
    assert other.seen == ["a b"]

    # a run killed on its second chunk keeps the first chunk; the next run encodes only the rest
    fresh = tmp_path / "resume"
    killed = CountingEncoder(fail_on_call=2)
    with pytest.raises(RuntimeError):
        EmbeddingCache(fresh).embed(killed, texts, chunk_size=2)
    resumed = CountingEncoder()
    out, rep3 = EmbeddingCache(fresh).embed(resumed, texts, chunk_size=2)
    assert rep3.cached == 4 and sorted(resumed.seen) == ["e f", "g h", "i j"]  # "a b", "c d" survived
    assert np.array_equal(out, first)


# ---- bundles ----------------------------------------------------------------------------------
def _bundle(tmp_path, tiny_bert, names=("rm0", "rm1", "rm2")):
    feat = PairEncoderFeaturizer(model=str(tiny_bert), cache_dir=str(tmp_path / "emb"))
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(60, feat.dim))
    margins, gold = rng.normal(size=(60, 3)), np.where(rng.random(60) < 0.5, 1, -1)
    res = train_offline_router(feats, margins, gold, OfflineTrainSettings(dim=8, epochs=3), seed=1)
    spec = {"name": "pair-encoder", "params": {"model": str(tiny_bert), "cache_dir": str(tmp_path / "emb")},
            "identity": feat.identity()}
    return save_bundle(tmp_path / "bundle", res, list(names), spec, "abc123", config={"x": 1}), res, feat


def test_bundle_round_trip(tmp_path, tiny_bert):
    path, res, feat = _bundle(tmp_path, tiny_bert)
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["rm_names"] == ["rm0", "rm1", "rm2"] and meta["dims"] == {"in_dim": 64, "dim": 8, "n_rms": 3}
    assert meta["data_sha256"] == "abc123" and meta["seed"] == 1 and "val_routing_accuracy" in meta["metrics"]
    assert meta["featurizer"]["identity"] == feat.identity()

    b1, b2 = OfflineBundle.load(path), OfflineBundle.load(path)  # b2 builds its featurizer from the bundle
    e = res.net.bt.detach().double().numpy()
    assert np.allclose(b1.prior_means(), e / np.linalg.norm(e, axis=1, keepdims=True))
    assert b1.prior_means().dtype == np.float64 and b1.prior_means().shape == (3, b1.dim)
    assert np.array_equal(b1.prior_means(), b2.prior_means())

    prompts, a, b = ["what is one plus one ?", "explain why"], ["two", "because"], ["three", "no"]
    x1 = OfflineBundle.load(path, featurizer=feat).contexts(prompts, a, b)
    x2 = b2.contexts(prompts, a, b)
    assert x1.shape == (2, 8) and x1.dtype == np.float64
    assert np.allclose(x1, x2) and np.allclose(np.linalg.norm(x1, axis=1), 1.0)
    with torch.no_grad():  # the numpy forward pass equals the trained torch network's
        ref = res.net.contexts(torch.tensor(feat.embed_pairs(prompts, a, b), dtype=torch.float32)).double().numpy()
    assert np.allclose(x1, ref, atol=1e-5)
    cos = x1 @ b1.prior_means().T
    assert np.array_equal(b1.argmax(x1), np.argmax(cos, axis=1))


def test_mismatched_bundle_is_refused(tmp_path, tiny_bert):
    path, _, _ = _bundle(tmp_path, tiny_bert)
    bundle = OfflineBundle.load(path)
    bundle.check_pool(["rm0", "rm1", "rm2"])
    for pool in (["rm0", "rm2", "rm1"], ["rm0", "rm1", "other"], ["rm0", "rm1"]):
        with pytest.raises(BundleError) as exc:
            bundle.check_pool(pool)
        assert "['rm0', 'rm1', 'rm2']" in str(exc.value) and str(pool) in str(exc.value)
    with pytest.raises(BundleError, match="identity"):  # a featurizer of the right width but another encoder
        OfflineBundle.load(path, featurizer=PairEncoderFeaturizer(model=str(tiny_bert), pooling="last",
                                                                   cache_dir=str(tmp_path / "emb")))
    with pytest.raises(BundleError, match="needs 64"):
        OfflineBundle.load(path, featurizer=PairEncoderFeaturizer(model="hash:16")).contexts(["a"], ["b"], ["c"])
    with pytest.raises(BundleError, match="not an offline-router bundle"):
        OfflineBundle.load(tmp_path / "nowhere")


# ---- the harness: offline_train / offline_eval on a synthetic pool ------------------------------
def _synthetic_pool(sizes=(("offline", 240), ("test", 150))):
    from rmroute.harness.core.config import PluginRef
    from rmroute.harness.pipelines.pool import Pool, PoolConfig
    from rmroute.harness.core.types import PreferencePair

    rng = np.random.default_rng(1)
    topics = {"math": "two plus three equals five", "animals": "the cat and the dog", "geo": "paris is a city of france"}
    splits, margins = {}, {}
    for split, n in sizes:
        pairs, rows = [], []
        for i in range(n):
            d = list(topics)[i % 3]
            label = "a" if rng.random() < 0.5 else "b"
            pairs.append(PreferencePair(f"{split}-{i}", d, f"{topics[d]} question {i}", f"answer {i} one", f"answer {i} two", label))
            right = rng.random(3) < 0.3
            right[i % 3] = True
            g = 1 if label == "a" else -1
            rows.append(np.where(right, 1.0, -1.0) * g * rng.uniform(0.5, 2.0, 3))
        splits[split], margins[split] = pairs, np.array(rows)
    cfg = PoolConfig(name="syn", reward_models=[PluginRef(name="length", label=n) for n in ("rm-a", "rm-b", "rm-c")])
    return Pool(config=cfg, names=["rm-a", "rm-b", "rm-c"], splits=splits, margins=margins)


def test_offline_train_and_eval_on_a_synthetic_pool(tmp_path, monkeypatch):
    import rmroute.harness.pipelines.offline as H

    pool = _synthetic_pool()
    monkeypatch.setattr(H, "load_pool", lambda cfg, path, log, built=None: pool)
    cfg = tmp_path / "offline.yaml"
    cfg.write_text(
        "name: syn\npool: pool.yaml\nfeaturizer: {name: pair-encoder, params: {model: 'hash:64'}}\n"
        f"seeds: [0, 1]\ndim: 16\nepochs: 60\nencode_splits: [offline, test]\nbundle_dir: {tmp_path / 'bundles'}\n"
    )
    summary = H.offline_train(cfg, log=lambda m: None)
    assert set(summary["seeds"]) == {"0", "1"}
    assert (tmp_path / "bundles" / "seed-1" / "model.safetensors").is_file()
    rep = json.loads(H.offline_eval(cfg, as_json=True, log=lambda m: None))
    m = rep["methods"]
    assert m["oracle"]["routing_accuracy"] == 1.0
    assert m["offline-router"]["routing_accuracy"] > 0.9
    assert m["offline-router"]["routing_accuracy"] > m[f"single:{rep['best_single_on_eval']}"]["routing_accuracy"] + 0.2
    assert set(m["offline-router"]["per_domain"]) == {"math", "animals", "geo"}
    right = right_matrix(pool.margins["test"], pool.gold("test"))
    assert m["random"]["routing_accuracy"] == pytest.approx(right.mean(1).mean())  # every pair has a right RM
    assert m["domain-best"]["routing_accuracy"] > 0.95  # the domain decides everything here
    assert "| offline-router |" in H.offline_eval(cfg, log=lambda m: None)

    pool.names = ["rm-a", "rm-c", "rm-b"]
    with pytest.raises(BundleError, match=r"\['rm-a', 'rm-b', 'rm-c'\].*\['rm-a', 'rm-c', 'rm-b'\]"):
        H.offline_eval(cfg, log=lambda m: None)


def test_replay_that_trains_its_bundle_builds_the_pool_once(tmp_path, monkeypatch):
    """Replay builds its pool, then trains the missing offline bundle from that same pool."""
    import rmroute.harness.pipelines.offline as H
    import rmroute.harness.runners.replay as replay

    pool = _synthetic_pool((("offline", 120), ("online", 60), ("test", 60)))
    builds = []

    def build_pool(cfg, *args, **kwargs):
        builds.append(cfg.name)
        return pool

    for module in (H, replay):
        monkeypatch.setattr(module, "build_pool", build_pool)
        monkeypatch.setattr(module, "load_pool_config", lambda path: pool.config.model_copy(deep=True))
    (tmp_path / "pool.yaml").write_text("name: syn\n")  # found by path; its content comes from load_pool_config
    offline = tmp_path / "offline.yaml"
    offline.write_text(
        f"name: syn\npool: {tmp_path / 'pool.yaml'}\nfeaturizer: {{name: pair-encoder, params: {{model: 'hash:32'}}}}\n"
        f"seeds: [0]\ndim: 8\nepochs: 5\nbundle_dir: {tmp_path / 'bundles'}\n"
    )
    settings = replay.ReplaySettings(pool=str(tmp_path / "pool.yaml"), offline=str(offline))
    prepared = replay.build_data(None, settings, log=lambda m: None)
    assert (tmp_path / "bundles" / "seed-0" / "bundle.json").is_file()  # the bundle was trained here
    assert builds == ["syn"]
    data = prepared.for_seed(0)
    assert sorted(data.names) == sorted(pool.names) and data.online.contexts["offline"].shape == (60, 8)
    assert "offline_bundle" in data.inputs

    stamp = (tmp_path / "bundles" / "seed-0" / "bundle.json").stat().st_mtime_ns
    replay.build_data(None, settings, log=lambda m: None)  # the bundle is there now: one more build, no training
    assert builds == ["syn", "syn"]
    assert (tmp_path / "bundles" / "seed-0" / "bundle.json").stat().st_mtime_ns == stamp

    # the pool's RMs change (one replaced): the bundle routes over the old ones, so it is retrained
    pool.names = [n if i else "rm-new" for i, n in enumerate(pool.names)]
    logs = []
    replay.build_data(None, settings, log=logs.append)
    assert any("retraining" in m for m in logs)
    from rmroute.harness.pipelines.offline_model import OfflineBundle
    assert OfflineBundle.load(tmp_path / "bundles" / "seed-0").rm_names == pool.names


def test_majority_and_mean_ensemble_baselines_by_hand():
    from rmroute.harness.pipelines.offline import majority_right, mean_ensemble_right

    gold = np.array([1, 1, -1, -1, 1])
    margins = np.array([[1.0, 2.0, 1.0], [2.0, NAN, NAN], [0.0, 0.0, 0.0], [2.0, 6.0, NAN], [1.0, -1.0, NAN]])
    # votes for / against gold: 3-0, 1-0, 0-0 (ties cast no vote), 0-2, 1-1
    assert majority_right(margins, gold).tolist() == [1.0, 1.0, 0.5, 0.0, 0.5]
    train = np.array([[0.0, 0.0, 0.0], [2.0, 4.0, 2.0]])  # mean (1, 2, 1), population std (1, 2, 1)
    # z-score means over the RMs that answered: 0 (tie: 0.5), +1, -1, (1 + 2)/2 = 1.5, (0 - 1.5)/2 = -0.75
    assert mean_ensemble_right(train, margins, gold).tolist() == [0.5, 1.0, 1.0, 0.0, 0.0]


def test_config_errors_name_file_line_and_key(tmp_path):
    from rmroute.harness.core.errors import ConfigError, NotBuiltError
    from rmroute.harness.pipelines.offline import load_offline_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("pool: p.yaml\nheads: {bt: 1.0, kl: 2.0}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: heads.kl: unknown key"):
        load_offline_config(bad)
    bad.write_text("pool: p.yaml\nfeaturizer: {name: pair-encoder, params: {nope: 1}}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: featurizer: .*nope"):
        load_offline_config(bad)
    bad.write_text("pool: p.yaml\nfinetune_encoder: true\n")
    with pytest.raises(NotBuiltError, match="finetune_encoder"):
        load_offline_config(bad)
    _, cfg = load_offline_config("configs/offline-cpu.yaml")
    assert cfg.heads.model_dump() == {"bt": 1.0, "cls": 0.0, "reg": 0.0} and cfg.seeds == [0, 1, 2, 3, 4]
