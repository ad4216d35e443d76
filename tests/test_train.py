"""The policy-training loop (rmroute.harness.runners.train): DPO maths against TRL, the loop on a tiny config,
feedback to the router, resume equality, RM failures, NaN losses, router failures, the plan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("trl")
pytest.importorskip("peft")

BASE = {
    "kind": "train",
    "suite": "train-test",
    "seeds": [0],
    "routers": ["random"],
    "reward_models": ["length", "lexical-overlap", "verifier-math"],
    "featurizer": {"name": "pair-encoder", "params": {"model": "hash:16"}},
    "settings": {
        "policy": {"model": "tiny", "device": "cpu", "tiny": {"hidden_size": 32, "intermediate_size": 64}},
        "generator": {"name": "transformers", "params": {"max_new_tokens": 12, "temperature": 1.0}},
        "prompts": {"domains": ["math", "chat"], "max_chars": 250},
        "iterations": 2, "batch_prompts": 2, "samples_per_prompt": 3,
        "learning_rate": 0.01, "offline_pairs": 30, "max_length": 192,
    },
}


def _config(tmp: Path, name: str, **over):
    from rmroute.harness.runners import load_config

    data = json.loads(json.dumps(BASE))
    settings = over.pop("settings", {})
    data.update(over)
    data["settings"].update(settings)
    data["settings"].setdefault("score_cache", str(tmp / "scores"))
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path), path


def _records(paths):
    from rmroute.harness.results import load_run

    return {load_run(p).router.label: load_run(p) for p in paths}


def _quiet(msg: str) -> None:
    pass


# ---- DPO maths -------------------------------------------------------------------------------
def test_pair_loss_closed_form():
    from rmroute.harness.runners.train.dpo import pair_loss_from_logps

    pc, pr, rc, rr = np.array([-3.0, -10.0]), np.array([-5.0, -2.0]), np.array([-4.0, -9.0]), np.array([-4.5, -1.0])
    out = pair_loss_from_logps(pc, pr, rc, rr, beta=0.5)
    delta = np.array([(-3 + 4) - (-5 + 4.5), (-10 + 9) - (-2 + 1)])  # 1.5, 0.0
    assert out.margin == pytest.approx(0.5 * delta)
    assert out.loss == pytest.approx([-math.log(1 / (1 + math.exp(-0.75))), math.log(2.0)])


@pytest.fixture(scope="module")
def trainer_setup(tmp_path_factory):
    """A tiny policy wrapped by TRL's DPOTrainer (LoRA), with non-zero LoRA B so policy != reference."""
    import torch

    from rmroute.harness.pipelines.policy import load_policy
    from rmroute.harness.runners.train.dist import Dist, PairFeed
    from rmroute.harness.runners.train.settings import PolicyTrainSettings
    from rmroute.harness.runners.train.state import make_trainer

    s = PolicyTrainSettings.model_validate({**BASE["settings"], "learning_rate": 0.05})
    pol = load_policy(s.policy)
    feed = PairFeed(Dist())
    trainer, _, _ = make_trainer(pol, s, tmp_path_factory.mktemp("trainer"), 0, {}, feed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    rows = {"prompt": [pol.format_prompt("What is 2+3?"), pol.format_prompt("Name a colour."), pol.format_prompt("Say hi")],
            "chosen": ["5", "Blue is a colour.", "hi there"], "rejected": ["7", "no", "bye"]}
    feed.set(rows["prompt"], rows["chosen"], rows["rejected"])  # the rows the trainer's dataset yields
    return pol, trainer, rows


def test_pair_losses_match_trl(trainer_setup):
    """rmroute.harness.runners.train.dpo's per-pair losses equal TRL's DPO loss on the same pairs, one pair at a time."""
    import torch

    from rmroute.harness.runners.train.dpo import dpo_pair_losses

    pol, tr, rows = trainer_setup
    mine = dpo_pair_losses(tr.model, pol.tokenizer, rows["prompt"], rows["chosen"], rows["rejected"], beta=tr.beta)
    ds = list(tr.train_dataset)  # the rows as TRL tokenised them (its dataset path, on the feed's pairs)
    assert len(ds) == 3
    tr.model.eval()
    with torch.no_grad():
        trl_each = [float(tr.compute_loss(tr.model, tr.data_collator([ds[i]]))) for i in range(len(ds))]
        trl_mean = float(tr.compute_loss(tr.model, tr.data_collator([ds[i] for i in range(len(ds))])))
    assert mine.loss == pytest.approx(trl_each, rel=1e-4, abs=1e-5)
    assert mine.loss.mean() == pytest.approx(trl_mean, rel=1e-4)
    assert np.all(mine.margin != 0)  # the adapter makes policy and reference differ


def test_dpo_step_moves_lora_and_lowers_loss(trainer_setup):
    from rmroute.harness.runners.train.dpo import dpo_pair_losses

    pol, tr, rows = trainer_setup
    before_w = {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}
    before = dpo_pair_losses(tr.model, pol.tokenizer, rows["prompt"], rows["chosen"], rows["rejected"], tr.beta).loss.mean()
    for _ in range(2):  # the same batch twice (the feed's rows): one DPO step each
        tr.train()
    after = dpo_pair_losses(tr.model, pol.tokenizer, rows["prompt"], rows["chosen"], rows["rejected"], tr.beta).loss.mean()
    moved = [n for n, p in tr.model.named_parameters() if p.requires_grad and not np.allclose(p.detach(), before_w[n])]
    assert moved and all("lora" in n for n in moved)
    assert after < before - 1e-3


# ---- the loop ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loop_runs(tmp_path_factory):
    from rmroute.harness.runners.train.runner import run

    tmp = tmp_path_factory.mktemp("loop")
    cfg, path = _config(tmp, "loop", routers=[
        "random", "bayesian-online", "mean-ensemble", "domain-best", {"name": "laser", "params": {"mode": "per_batch"}},
        "oracle",  # `prior_mean: offline` without settings.offline is a validate error (test_config_hardening)
    ])
    return tmp, _records(run(cfg, path, tmp / "out", log=_quiet))


def test_loop_writes_a_run_per_trainable_router(loop_runs):
    _, recs = loop_runs
    assert "oracle" not in recs  # replay-only: skipped with a note
    for label in ("random", "bayesian-online", "mean-ensemble", "domain-best", "laser"):
        r = recs[label]
        assert r.status == "ok", r.error
        assert r.kind == "train" and r.extra["policy"]["model"] == "tiny"
        assert (Path(r.extra["checkpoint"]) / "adapter_config.json").is_file()
        its = r.extra["iterations"]
        assert len(its) == 2 and len(r.extra["curves"]["dpo_loss"]) == 2
        pairs = sum(i["pairs"] for i in its)
        assert pairs == 2 * 2 * 3  # iterations x prompts x C(3, 2)
        assert sum(r.rm_calls["per_rm"].values()) == r.rm_calls["total"] == r.metrics["rm_calls"]
        for i in its:
            assert set(i["time"]) >= {"generate", "route", "score", "train", "feedback"}
            assert i["pairs_kept"] == len(i["feedback_arms"]) == len(i["pair_losses"])
    # ensembles pay K calls per pair; single-RM routers one per pair plus their fallbacks
    assert recs["mean-ensemble"].metrics["rm_calls"] == 3 * 12
    for label in ("random", "bayesian-online", "domain-best", "laser"):
        m = recs[label].metrics
        assert m["rm_calls"] == 12 + m["fallbacks"]


def test_laser_per_batch_credits_one_rm_per_batch(loop_runs):
    _, recs = loop_runs
    for it in recs["laser"].extra["iterations"]:
        shares = [v for v in it["credited_share"].values() if v > 0]
        assert len(shares) <= 2  # one RM per batch (a second only through a fallback)


def _spy_updates(monkeypatch) -> dict[str, list]:
    """Record every router.update(contexts, arms, feedback) call, per router name."""
    import rmroute.harness.runners.train.state as state

    calls: dict[str, list] = {}
    real = state.build_router

    def spying(env, spec, seed):
        router = real(env, spec, seed)
        update = router.update

        def record(X, arms, fb):
            calls.setdefault(spec.name, []).append((np.array(arms), np.array(fb)))
            return update(X, arms, fb)

        router.update = record
        return router

    monkeypatch.setattr(state, "build_router", spying)
    return calls


@pytest.mark.parametrize("chain", ["identity", "batch-baseline"])
def test_feedback_reaches_the_router(tmp_path, monkeypatch, chain):
    """The router gets one value per kept pair for its credited arm: the pair's DPO loss through the
    chain (identity: loss, or −loss for laser; batch-baseline: mean(loss) − loss)."""
    from rmroute.harness.runners.train.runner import run

    calls = _spy_updates(monkeypatch)
    routers = ["bayesian-online"] + ([{"name": "laser", "params": {"mode": "per_item"}}] if chain == "identity" else [])
    cfg, path = _config(tmp_path, "fb", routers=routers, normalizers=[chain])
    recs = _records(run(cfg, path, tmp_path / "out", log=_quiet))
    for label, name, sign in (("bayesian-online", "bayesian-online", 1.0), ("laser", "laser", -1.0)):
        if label not in recs:
            continue
        its = [i for i in recs[label].extra["iterations"] if i["pairs_kept"]]
        assert its and len(calls[name]) == len(its)
        for it, (arms, fb) in zip(its, calls[name]):
            loss = np.array(it["pair_losses"])
            expected = sign * loss if chain == "identity" else loss.mean() - loss
            assert arms.tolist() == it["feedback_arms"]
            assert fb == pytest.approx(expected, abs=1e-12)


def test_default_chain_is_batch_baseline_then_quantile(tmp_path, monkeypatch):
    from rmroute.harness.runners.train.runner import run

    calls = _spy_updates(monkeypatch)
    cfg, path = _config(tmp_path, "chain", routers=["bayesian-online"],
                        settings={"iterations": 1})
    recs = _records(run(cfg, path, tmp_path / "out", log=_quiet))
    loss = np.array(recs["bayesian-online"].extra["iterations"][0]["pair_losses"])
    (arms, fb), = calls["bayesian-online"]
    assert loss.size < 20 and fb == pytest.approx(np.full(loss.size, 0.5))  # quantile warm-up (20 values)


def _percentile(values, q):
    """numpy's default (linear) percentile, written out: rank h = (n − 1)·q/100 between sorted values."""
    v = sorted(values)
    h = (len(v) - 1) * q / 100
    lo = math.floor(h)
    return v[lo] + (h - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


def test_feedback_is_the_chain_of_the_losses_before_the_step(tmp_path, monkeypatch):
    """Per iteration: the per-pair losses are measured before TRL's step (spied call order), they are
    the losses of the weights the step starts from (their mean is TRL's own logged loss, and at the
    first iteration, where the fresh LoRA adapter leaves policy = reference, each is ln 2), and the
    router receives the chain of them: batch-baseline → mean − loss (a ``loss`` router with its own
    chain); LASeR's default chain → one value per batch, −(batch loss) raw while its history is
    shorter than two, then the quantile rescaling of that history, computed here by hand."""
    import trl

    import rmroute.harness.runners.train.dpo as dpo
    import rmroute.harness.runners.train.loop as loop
    from rmroute.harness.runners.train.runner import run

    events: list[tuple] = []
    real_losses, real_train = dpo.dpo_pair_losses, trl.DPOTrainer.train

    def losses(*args, **kwargs):
        out = real_losses(*args, **kwargs)
        events.append(("losses", out.loss.copy()))
        return out

    def train(self, *args, **kwargs):
        events.append(("train",))
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(dpo, "dpo_pair_losses", losses)
    monkeypatch.setattr(trl.DPOTrainer, "train", train)
    calls = _spy_updates(monkeypatch)
    routers = [{"name": "bayesian-online", "normalizers": ["batch-baseline"]}, {"name": "laser", "params": {"mode": "per_item"}}]
    cfg, path = _config(tmp_path, "prestep", routers=routers, settings={"iterations": 4, "batch_prompts": 3, "max_length": 512})
    real_update = loop.update_router

    def update_router(router, chain, X, arms, raw, **kw):
        events.append(("update",))
        return real_update(router, chain, X, arms, raw, **kw)

    monkeypatch.setattr(loop, "update_router", update_router)
    recs = _records(run(cfg, path, tmp_path / "out", log=_quiet))
    # per trained iteration: losses, then the step, then the router's update (two runs in a row)
    kinds = [e[0] for e in events]
    n_trained = sum(1 for r in recs.values() for it in r.extra["iterations"] if it["feedback_arms"])
    assert kinds == ["losses", "train", "update"] * n_trained
    measured = [e[1] for e in events if e[0] == "losses"]
    fed = iter(measured)
    history: list[float] = []
    for label in ("bayesian-online", "laser"):
        its = [i for i in recs[label].extra["iterations"] if i["feedback_arms"]]
        assert len(its) == len(calls[label]) >= 2, [(i["pairs_kept"], i["dpo_skipped"]) for i in recs[label].extra["iterations"]]
        for t, (it, (arms, fb)) in enumerate(zip(its, calls[label])):
            loss = next(fed)
            assert it["pair_losses"] == loss.tolist() and it["loss_before"] == pytest.approx(loss.mean(), abs=1e-12)
            assert it["dpo_loss"] == pytest.approx(loss.mean(), abs=1e-4)  # TRL's forward pass, same weights
            if t == 0:
                assert loss == pytest.approx(np.full(loss.size, math.log(2.0)), abs=1e-6)
            assert arms.tolist() == it["feedback_arms"]
            if label == "bayesian-online":
                assert fb == pytest.approx(loss.mean() - loss, abs=1e-12)
                continue
            value = -loss.mean()  # LASeR: one reward per batch
            history.append(value)
            if len(history) < 2:
                expected = value
            else:
                lo, hi = _percentile(history, 20), _percentile(history, 80)
                expected = min(max((value - lo) / (hi - lo), 0.0), 1.0)
            assert fb == pytest.approx(np.full(loss.size, expected), abs=1e-12)
    assert recs["laser"].metrics["final_loss"] == pytest.approx(measured[-1].mean(), abs=1e-12)


# ---- reliability -----------------------------------------------------------------------------------
def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    from rmroute.harness.core.errors import RmrouteError
    from rmroute.harness.runners.train.runner import StopRequested, run

    routers = ["bayesian-online", {"name": "laser", "params": {"mode": "per_item"}}]
    cfg, path = _config(tmp_path, "resume", routers=routers)
    full = _records(run(cfg, path, tmp_path / "full", log=_quiet))
    with pytest.raises(StopRequested):
        run(cfg, path, tmp_path / "cut", stop_after=1, log=_quiet)
    assert issubclass(StopRequested, RmrouteError)
    assert not (tmp_path / "cut" / "runs").exists() or not any((tmp_path / "cut" / "runs").rglob("*.json"))
    resumed = _records(run(cfg, path, tmp_path / "cut", resume=True, log=_quiet))
    assert set(full) == set(resumed) == {"bayesian-online", "laser"}
    for label in full:
        a, b = full[label], resumed[label]
        assert a.status == b.status == "ok"
        assert a.extra["final_router_state"] == b.extra["final_router_state"]
        assert a.metrics == b.metrics and a.rm_calls == b.rm_calls
        strip = lambda its: [{k: v for k, v in i.items() if k != "time"} for i in its]  # noqa: E731
        assert strip(a.extra["iterations"]) == strip(b.extra["iterations"])
    # the first run of the second config resumed from its checkpoint after iteration 1
    ckpt = json.loads((tmp_path / "cut" / "checkpoints" / "train-test").glob("*bayesian-online*").__next__()
                      .joinpath("latest.json").read_text())
    assert ckpt["iteration"] == 2


class _FlakyRM:
    """Abstains (NaN) on responses of even length and raises on responses containing 'e'."""

    name = "flaky"
    cost = 1.0

    def identity(self) -> str:
        return "flaky-test-rm:v1"

    def score(self, prompts, responses):
        if any("e" in r for r in responses):
            raise RuntimeError("flaky RM failed")
        return np.array([np.nan if len(r) % 2 == 0 else float(len(r)) for r in responses])


class _HashRM:
    """A deterministic pseudo-random score per response (crc32): ties only for identical responses."""

    name = "hash"
    cost = 1.0

    def identity(self) -> str:
        return "hash-test-rm:v1"

    def score(self, prompts, responses):
        import zlib

        return np.array([zlib.crc32(r.encode("utf-8")) / 2**32 for r in responses])


class _TestRMs:
    from rmroute.harness.core.hookspecs import hookimpl

    @hookimpl
    def register_reward_models(self, register):
        register("flaky-test", _FlakyRM)
        register("hash-test", _HashRM)


@pytest.fixture
def test_rms():
    from rmroute.harness.core.plugins import build_registry, reset_registry

    reset_registry(build_registry(extra_plugins=[("test-rms", _TestRMs())]))
    yield
    reset_registry()


def test_failing_rm_items_abstain_and_fall_back_to_the_next_arm(tmp_path, test_rms):
    from rmroute.harness.runners.train.runner import run

    cfg, path = _config(tmp_path, "flaky", routers=[{"name": "single", "params": {"arm": "flaky"}}],
                        reward_models=["flaky-test", "length"])
    (rec,) = _records(run(cfg, path, tmp_path / "out", log=_quiet)).values()
    assert rec.status == "ok", rec.error
    m = rec.metrics
    its = rec.extra["iterations"]
    # every pair calls flaky once; a pair where it abstained (on either response) falls back to length
    assert m["fallbacks"] > 0 and m["abstained"] == m["fallbacks"]
    assert rec.rm_calls["per_rm"] == {"flaky": 12, "length": m["fallbacks"]}
    assert sum(i["credited_share"]["length"] * i["pairs_kept"] for i in its) == pytest.approx(
        sum(a == 1 for i in its for a in i["feedback_arms"]))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, test_rms):
    import rmroute.harness.runners.train.dpo as dpo
    from rmroute.harness.runners.train.runner import run

    real = dpo.dpo_pair_losses
    n = {"calls": 0}

    def nan_on_second(*args, **kwargs):
        n["calls"] += 1
        out = real(*args, **kwargs)
        if n["calls"] == 2:
            out.loss[:] = np.nan
        return out

    monkeypatch.setattr(dpo, "dpo_pair_losses", nan_on_second)
    cfg, path = _config(tmp_path, "nan", routers=["random", "bayesian-online"], reward_models=["hash-test"])
    recs = _records(run(cfg, path, tmp_path / "out", log=_quiet))
    bad = recs["random"]
    assert bad.status == "failed" and "iteration 1" in bad.error and "batch prompts" in bad.error
    latest = json.loads((Path(bad.extra["checkpoint"]) / "latest.json").read_text())
    assert latest["iteration"] == 1
    assert recs["bayesian-online"].status == "ok"  # the next run is unaffected


# ---- config and plan -------------------------------------------------------------------------------
def test_bad_settings_name_the_key(tmp_path):
    from rmroute.harness.runners import load_config
    from rmroute.harness.core.errors import ConfigError

    data = json.loads(json.dumps(BASE))
    data["settings"]["samples_per_prompt"] = 1
    data["settings"]["prompts"]["source"] = "rmroute-pairs-v1"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "settings.samples_per_prompt" in str(err.value) and "settings.prompts.source" in str(err.value)


def test_plan_counts_parameters_and_memory(tmp_path):
    from rmroute.harness.pipelines.policy import TinySpec, build_tiny
    from rmroute.harness.runners.train.runner import plan
    from rmroute.harness.runners.train.settings import PolicyTrainSettings

    cfg, path = _config(tmp_path, "plan")
    text = plan(cfg, path)
    spec = PolicyTrainSettings.model_validate(cfg.settings).policy.tiny
    model, _ = build_tiny(TinySpec.model_validate(spec.model_dump()))
    n = sum(p.numel() for p in model.parameters())
    c = model.config
    lora = c.num_hidden_layers * 8 * ((c.hidden_size + c.hidden_size) + (c.hidden_size + c.hidden_size))  # q, v: 32->32
    assert f"parameters: {n:,} x 4 bytes" in text
    assert f"LoRA: {lora:,} parameters" in text
    kv = 2 * c.num_hidden_layers * c.hidden_size * 192 * 6 * 4  # K and V, L layers, h dims, T tokens, rows, fp32
    assert f"{kv / 2**20:.1f} MiB" in text


def test_ray_executor_gives_the_same_runs(tmp_path):
    """--executor ray: every (router entry, seed) as a Ray task (local Ray, 2 CPUs); identical run files."""
    pytest.importorskip("ray")
    from rmroute.harness.results import load_run
    from rmroute.harness.runners import run_config

    cfg, path = _config(tmp_path, "ray", routers=["random", {"name": "single", "params": {"arm": "all"}}],
                        settings={"iterations": 1, "batch_prompts": 1})
    local = _records(run_config(cfg, path, tmp_path / "local"))
    ray_paths = run_config(cfg, path, tmp_path / "ray", executor="ray")
    remote = _records(ray_paths)
    assert set(remote) == set(local) == {"random", "single:length", "single:lexical-overlap", "single:verifier-math"}
    for label, rec in local.items():
        assert remote[label].status == rec.status == "ok"
        assert remote[label].metrics == rec.metrics and remote[label].rm_calls == rec.rm_calls
        assert remote[label].extra["final_router_state"] == rec.extra["final_router_state"]
    assert all(load_run(p).run_id for p in ray_paths)


def test_train_tiny_config_every_router(tmp_path):
    """configs/train-tiny.yaml itself, with the trained CPU pool and the offline bundle swapped for cheap
    RMs and hashed features (the pool takes minutes to train): every router entry trains and writes
    an ok run; the calls each pays match its kind."""
    from rmroute.harness.runners import load_config
    from rmroute.harness.runners import run_config
    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "configs" / "train-tiny.yaml").read_text())
    assert load_config(REPO / "configs" / "train-tiny.yaml").kind == "train"
    data["reward_models"] = ["length", "lexical-overlap", "verifier-math"]
    data["featurizer"] = {"name": "pair-encoder", "params": {"model": "hash:16"}}
    for key in ("pool", "offline"):
        data["settings"].pop(key)
    for ref in data["routers"]:
        if isinstance(ref, dict):
            ref.get("params", {}).pop("prior_mean", None)  # the offline bundle's prior needs the trained pool
    data["settings"].update(iterations=1, batch_prompts=2, samples_per_prompt=2, offline_pairs=20,
                            score_cache=str(tmp_path / "scores"))
    path = tmp_path / "train-tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    recs = _records(run_config(load_config(path), path, tmp_path / "out"))
    singles = {"single:length", "single:lexical-overlap", "single:verifier-math"}
    assert set(recs) == singles | {"random", "majority-vote", "mean-ensemble", "min-ensemble", "domain-best", "laser",
                                   "laser-per-item", "bayesian", "bayesian-offline", "bayesian-online", "bayesian-adaptive"}
    assert all(r.status == "ok" for r in recs.values()), {k: r.error for k, r in recs.items() if r.status != "ok"}
    for label in ("majority-vote", "mean-ensemble", "min-ensemble"):
        assert recs[label].metrics["calls_per_pair"] == 3.0  # every RM, every pair
    for label in ("single:length", "random", "laser", "bayesian"):
        m = recs[label].metrics  # one RM per pair, plus one more call per pair that fell back (the next
        assert m["rm_calls"] == m["pairs_total"] + m["fallbacks"]  # arm after verifier-math always answers)
    assert recs["single:length"].metrics["fallbacks"] == 0  # length never abstains
    for label, rec in recs.items():  # each iteration's credited shares are a distribution over the RMs
        shares = rec.extra["curves"]["credited_share"]
        assert sum(v[0] for v in shares.values()) == pytest.approx(1.0), label
