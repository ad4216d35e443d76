"""Built-in routers, normalizers and featurizers, registered through the same hooks as any
third-party plugin. Router metadata declares the traits the host reads
(:func:`rmroute.harness.routing.router_spec`): ``learns``, ``replay_only``, ``fit_offline``,
``calls_per_item``, ``feedback`` (training feedback: ``loss`` by default, ``neg-loss`` for LASeR)
and ``expands_arm_all`` (``arm: all`` runs one entry per RM).
"""

from __future__ import annotations

from rmroute.harness.core.hookspecs import Register, hookimpl
from rmroute.routers.baselines import (
    DomainBestRouter, MajorityVoteRouter, MeanEnsembleRouter, MinEnsembleRouter, OracleRouter,
)
from rmroute.routers.bayesian import BayesianAdaptiveRouter, BayesianOfflineRouter, BayesianOnlineRouter, BayesianRouter
from rmroute.routers.featurize import PairEncoderFeaturizer, PromptEncoderFeaturizer
from rmroute.routers.laser import LaserRouter
from rmroute.routers.normalize import (
    AffineNormalizer, BatchBaselineNormalizer, EmaZScoreNormalizer, IdentityNormalizer, QuantileNormalizer,
)
from rmroute.routers.simple import RandomRouter, SingleRouter

WU_LU = "Wu & Lu, Reward Model Routing in Alignment, arXiv 2510.02850"


@hookimpl
def register_routers(register: Register) -> None:
    register("single", SingleRouter, description="always the RM `arm`", calls_per_item=1, learns=False,
             expands_arm_all=True)
    register("random", RandomRouter, description="uniform random RM per item, seeded", calls_per_item=1, learns=False)
    register("majority-vote", MajorityVoteRouter, description="every RM votes sign(margin); majority wins; a tied vote is a tie (scored 0.5)", paper="both papers' baselines", calls_per_item="K", learns=False)
    register("mean-ensemble", MeanEnsembleRouter, description="mean of per-RM z-scored margins (statistics from the offline split)", paper="both papers' baselines", calls_per_item="K", learns=False, fit_offline=True)
    register("min-ensemble", MinEnsembleRouter, description="conservative: the z-scored margin of smallest magnitude decides", paper="beyond the papers (conservative ensemble)", calls_per_item="K", learns=False, fit_offline=True)
    register("oracle", OracleRouter, description="an RM that agrees with the gold label when one does (replay only; upper bound)", paper="both papers' baselines", calls_per_item=1, learns=False, replay_only=True)
    register("domain-best", DomainBestRouter, description="the RM most accurate on the offline split for the item's domain", paper="beyond the papers (per-domain best single RM)", calls_per_item=1, learns=False, fit_offline=True)
    register("bayesian", BayesianRouter, paper=WU_LU, calls_per_item=1, learns=True,
             description="BayesianRouter: per-RM Bayesian linear regression (prior mean = offline RM embeddings), Thompson sampling per item")
    register("bayesian-offline", BayesianOfflineRouter, paper=WU_LU, calls_per_item=1, learns=False,
             description="ablation of BayesianRouter: argmax of the prior mean only, never updates")
    register("bayesian-online", BayesianOnlineRouter, paper=WU_LU, calls_per_item=1, learns=True,
             description="ablation of BayesianRouter: zero prior mean, online learning only")
    register("bayesian-adaptive", BayesianAdaptiveRouter, paper=f"beyond {WU_LU}", calls_per_item="1..2", learns=True,
             description="Thompson sampling that also calls the runner-up RM where P(top RM is best) < threshold; combines by agreement / the likelier-best RM")
    register("laser", LaserRouter, paper="Nguyen et al., LASeR, arXiv 2410.01735", calls_per_item=1, learns=True,
             feedback="neg-loss",
             description="LASeR: LinUCB over RMs (alpha, ridge); per_batch (one RM per batch from its mean context) or per_item")


@hookimpl
def register_normalizers(register: Register) -> None:
    register("identity", IdentityNormalizer, description="feedback unchanged (NaN/inf still rejected)", paper="-")
    register("affine", AffineNormalizer, description="scale * r + shift (e.g. 0/1 agreement as LASeR's reward sign: shift -1)", paper="-")
    register("batch-baseline", BatchBaselineNormalizer, description="mean of the batch minus each value (per-pair losses)", paper="BayesianRouter")
    register("quantile", QuantileNormalizer, description="clip((r - q_low)/(q_high - q_low), 0, 1) over the history; 0.5 during warm-up", paper="LASeR, BayesianRouter")
    register("ema-zscore", EmaZScoreNormalizer, description="per-arm z-score against an exponential moving mean/variance, clipped", paper="BayesianRouter (released code)")


@hookimpl
def register_featurizers(register: Register) -> None:
    check = {"model": "hash:64"}  # the conformance check runs offline, without a model download
    register("pair-encoder", PairEncoderFeaturizer, paper=WU_LU,
             description="[(h1+h2)/2 ; |h1-h2|] of a text encoder over prompt+response A and prompt+response B "
                         "(default all-MiniLM-L6-v2, mean pooling; any HF encoder/decoder, mean or last-token)",
             check_params=check)
    register("prompt-encoder", PromptEncoderFeaturizer, paper="-",
             description="the text encoder's embedding of the prompt alone (route per prompt)", check_params=check)
