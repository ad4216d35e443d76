"""The train runner's settings: what a ``kind: train`` config's ``settings`` may hold.

:class:`PolicyTrainSettings` is the model `rmroute validate` checks a train config's ``settings``
against (the offline router has its own, ``OfflineTrainSettings``); the runners read it through
:func:`rmroute.harness.runners.settings_of`. Which normalizer chain turns a pair's DPO loss into a
router's reward by default is :data:`rmroute.harness.routing.TRAIN_FEEDBACK`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt, field_validator

from rmroute.harness.core.config import StrictModel
from rmroute.harness.pipelines.policy import PolicySpec


class LoraSettings(StrictModel):
    """The LoRA adapter DPO trains (peft)."""

    r: StrictInt = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class PromptSettings(StrictModel):
    """Where the training prompts come from and in which order."""

    source: str = Field("suite:rmroute-pairs-v1:online", description="suite:<suite>:<split>")
    seed: StrictInt = Field(0, description="the suite's build seed")
    domains: list[str] = Field(default_factory=lambda: ["math", "chat"])
    max_chars: StrictInt | None = Field(None, ge=1, description="leave out prompts longer than this")
    shuffle_seed: StrictInt = Field(0, description="the prompt order (the same for every router and seed)")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.count(":") != 2 or not v.startswith("suite:"):
            raise ValueError("expected 'suite:<suite name>:<split>', e.g. suite:rmroute-pairs-v1:online")
        return v


class GeneratorSettings(StrictModel):
    """The generator plugin that samples the policy's responses."""

    name: str = "transformers"
    params: dict[str, Any] = Field(default_factory=dict)


class PolicyTrainSettings(StrictModel):
    """A train config's ``settings``: the policy, its prompts and generator, the RMs and contexts, DPO."""

    policy: PolicySpec
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    pool: str | None = Field(None, description="a pool config whose RMs are used when `reward_models` is empty")
    offline: str | None = Field(None, description="an offline-router config: contexts and prior_mean: offline")
    offline_pairs: StrictInt = Field(200, ge=1, description="offline-split pairs scored for fit_offline routers")
    iterations: StrictInt = Field(2, ge=1)
    batch_prompts: StrictInt = Field(4, ge=1)
    generation_chunk: StrictInt | None = Field(
        None, ge=1, description="prompts per generate() call, chunk j seeded by (seed, iteration, j); chunks are dealt "
                                "round robin to the processes. None: the whole batch in one process, an equal share per "
                                "process under accelerate. Set it to sample the same responses with any process count")
    samples_per_prompt: StrictInt = Field(2, ge=2)
    pairs_per_prompt: StrictInt | None = Field(None, ge=1, description="None: every pair of a prompt's responses")
    tie_eps: float = Field(0.0, ge=0)
    beta: float = Field(0.1, gt=0)
    learning_rate: float = Field(5e-6, gt=0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "constant", description="the learning-rate schedule over the run's DPO steps (one per iteration; "
                                "transformers.get_scheduler, its state carried across iterations and checkpoints)")
    warmup_steps: StrictInt = Field(0, ge=0, description="warm-up steps of lr_scheduler")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: StrictInt | None = Field(1024, ge=8, description="DPO sequence length cap (prompt + response tokens)")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    report_to: list[Literal["none", "tensorboard", "wandb"]] = Field(default_factory=lambda: ["none"])
    on_bad_feedback: Literal["error", "skip"] = "error"
    permute_arms: bool = Field(True, description="list the RMs in a seeded order per seed (recorded as extra.arm_order)")
    score_cache: str | None = Field(None, description="score cache folder (default $RMROUTE_CACHE/scores)")
    checkpoint_dir: str | None = Field(None, description="default <out>/checkpoints/<suite>/<run id>")
    loss_batch_size: StrictInt = Field(16, ge=1)
    threads: StrictInt | None = Field(None, ge=1, description="torch threads (CPU)")
    ray_num_cpus: float = Field(1.0, gt=0, description="--executor ray: CPUs reserved per (router, seed) run")
    ray_num_gpus: float = Field(0.0, ge=0, description="--executor ray: GPUs reserved per (router, seed) run")

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def pairs_per_iteration(self) -> int:
        """Candidate pairs per iteration: ``batch_prompts`` × (``pairs_per_prompt`` or every pair of a prompt's samples)."""
        n = self.samples_per_prompt
        return self.batch_prompts * (self.pairs_per_prompt or n * (n - 1) // 2)
