"""Built-in reward-model backends."""

from __future__ import annotations

from rmroute.harness.core.hookspecs import Register, hookimpl
from rmroute.reward_models.heuristics import LengthRM, LexicalOverlapRM
from rmroute.reward_models.remote import RemoteRM
from rmroute.reward_models.hf import HFLogLikRM, HFSeqClsRM
from rmroute.reward_models.verifier import MathVerifierRM


@hookimpl
def register_reward_models(register: Register) -> None:
    register("length", LengthRM, description="response length in words (the length bias of real RMs)", cost=0.0)
    register("lexical-overlap", LexicalOverlapRM, description="share of the prompt's content words the response repeats", cost=0.0)
    register("verifier-math", MathVerifierRM, description="final-number match with the item's reference answer; NaN without one", cost=0.0)
    register("hf-seqcls", HFSeqClsRM, description="AutoModelForSequenceClassification reward model (first logit)", cost=1.0)
    register("hf-loglik", HFLogLikRM, description="causal LM mean log-probability of the response given the prompt", cost=1.0)
    register("remote-http", RemoteRM, description="client for an OpenRLHF-style reward server (POST /get_reward)", cost=1.0)
