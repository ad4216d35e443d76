"""``rmroute run --dry-run`` for train configs: the plan, the models it would load, a memory estimate.

Nothing is downloaded or trained. The policy's shape comes from ``model: tiny`` (built, it is tiny)
or from its ``config.json`` (local folder or hub cache) instantiated on the ``meta`` device, so
parameter counts are exact without loading weights. Estimates (bytes):

    weights      = N_params × b                  b = 2 (bfloat16/float16) or 4 (float32; ``auto`` on CPU)
    LoRA         = Σ over targeted Linear layers of r·(d_in + d_out), stored in float32 (4 bytes)
    optimiser    = LoRA × (4 grad + 8 AdamW moments) bytes
    KV cache     = 2 · L · H_kv · d_head · T · R × b  with T = max_length (prompt + new tokens) and
                   R = rows per generate call (the generator's batch_size, or prompts × samples)

Activations of the DPO step are not included (they scale with batch × sequence and are what
``gradient_checkpointing`` trades for time); treat the total as a lower bound.
"""

from __future__ import annotations

from typing import Any

from rmroute.harness.pipelines.gguf_policy import KNOWN
from rmroute.harness.pipelines.policy import build_tiny
from rmroute.harness.runners import settings_of
from rmroute.harness.runners.train.settings import PolicyTrainSettings


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def _meta_model(spec) -> tuple[Any | None, str]:
    """(a model with the policy's shape on the meta device, or None; a note)."""
    import torch

    if spec.model == "tiny":
        model, _ = build_tiny(spec.tiny)
        return model, "tiny Llama built from config"
    if str(spec.model).startswith("pypi-gguf:"):
        name = spec.model[len("pypi-gguf:"):]
        return None, (f"GGUF from PyPI chunks ({KNOWN[name].file})" if name in KNOWN else f"unknown {spec.model}")
    if spec.gguf_file:
        return None, f"GGUF {spec.gguf_file} (shape known only when loaded; needs the gguf package)"
    try:
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(spec.model, revision=spec.revision, trust_remote_code=False,
                                            local_files_only=True)  # a plan never downloads
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return model, f"config of {spec.model}"
    except Exception as exc:  # noqa: BLE001 - a plan must still print without the model's files
        return None, f"config of {spec.model} not available offline ({type(exc).__name__})"


def lora_params(model, targets: list[str], r: int) -> int:
    """Σ r·(in + out) over Linear layers whose name ends with a target module name."""
    import torch

    total = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] in targets:
            total += r * (mod.in_features + mod.out_features)
    return total


def kv_cache_bytes(config, tokens: int, rows: int, dtype_bytes: int) -> int:
    L = int(config.num_hidden_layers)
    heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    return 2 * L * heads * head_dim * tokens * rows * dtype_bytes


def plan(cfg, config_path) -> str:
    """What ``rmroute run --dry-run`` prints for a train config."""
    s: PolicyTrainSettings = settings_of(cfg)
    spec = s.policy
    lines = [f"train plan for {config_path} (suite {cfg.suite!r})"]
    routers = [r.label or r.name for r in cfg.routers]
    lines.append(f"  runs: {len(routers)} router(s) x {len(cfg.seeds)} seed(s) = {len(routers) * len(cfg.seeds)}"
                 f" ({', '.join(routers)}); 'single' with arm: all expands to one run per RM")
    lines.append(f"  per run: {s.iterations} iteration(s) x {s.batch_prompts} prompts x {s.samples_per_prompt} samples"
                 f" -> {s.pairs_per_iteration} candidate pairs per iteration; prompts from {s.prompts.source}"
                 f" domains {s.prompts.domains}")
    lines.append(f"  DPO: beta {s.beta}, lr {s.learning_rate}, LoRA r={s.lora.r} alpha={s.lora.alpha} on {s.lora.target_modules},"
                 f" max_length {s.max_length}, report_to {s.report_to}")
    lines.append("  models to load:")
    lines.append(f"    policy: {spec.model}" + (f" ({spec.gguf_file})" if spec.gguf_file else "") + f", dtype {spec.dtype}, device {spec.device}")
    lines.append(f"    generator: {s.generator.name} {s.generator.params}")
    rms = [r.label or r.name for r in cfg.reward_models]
    lines.append(f"    reward models: {', '.join(rms) if rms else 'those of the pool ' + str(s.pool)}")
    if s.offline:
        lines.append(f"    offline router bundle (contexts, prior): {s.offline}")
    elif cfg.featurizer is not None:
        lines.append(f"    featurizer: {cfg.featurizer.name} {cfg.featurizer.params}")
    model, note = _meta_model(spec)
    lines.append(f"  memory estimate ({note}):")
    if model is None:
        lines.append("    unknown without the model's config")
        return "\n".join(lines)
    n = sum(p.numel() for p in model.parameters())
    on_gpu = spec.device.startswith("cuda") or (spec.device == "auto" and _cuda())
    b = {"float32": 4, "bfloat16": 2, "float16": 2}.get(spec.dtype, 2 if on_gpu else 4)
    lora = lora_params(model, s.lora.target_modules, s.lora.r)
    rows = int(s.generator.params.get("batch_size", s.batch_prompts * s.samples_per_prompt))
    tokens = int(s.max_length or (int(s.generator.params.get("max_new_tokens", 128)) + 512))
    kv = kv_cache_bytes(model.config, tokens, rows, b)
    weights, lora_b, opt = n * b, lora * 4, lora * 12
    lines += [
        f"    parameters: {n:,} x {b} bytes = {_gib(weights)}",
        f"    LoRA: {lora:,} parameters = {_gib(lora_b)}; gradients + AdamW state {_gib(opt)}",
        f"    KV cache: {tokens} tokens x {rows} rows = {_gib(kv)}",
        f"    total (without DPO activations): {_gib(weights + lora_b + opt + kv)}",
    ]
    return "\n".join(lines)


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False
