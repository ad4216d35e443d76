"""benchmarks/gpu_check.py: its CPU dry run (the same plan as the CUDA check, tiny sizes) runs clean,
its FLOP/roofline arithmetic matches a hand computation, and the DPO step of its vLLM check moves
the LoRA adapter."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@functools.lru_cache(maxsize=None)
def _module():
    """benchmarks/gpu_check.py as a module (registered in sys.modules first: it defines dataclasses)."""
    spec = importlib.util.spec_from_file_location("rmroute_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _env(**extra) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def test_dry_run_runs_every_step(tmp_path):
    """`--all --dry-run`: exit 0, a row for every planned step, every row that is not skipped is ok
    with finite positive figures, the table is printed and gpu_check.json parses (about 50 s on 2 cores)."""
    gc = _module()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--all", "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| step | device/dtype | measured | figures | s | status |" in proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = report["rows"]
    assert report["profile"] == "dry-run" and report["steps"] == list(gc.STEPS)
    assert {r["step"] for r in rows} == set(gc.STEPS)
    for r in rows:
        assert r["device"].startswith("cpu/"), r
        if r["status"].startswith("skipped"):
            continue
        assert r["status"] == "ok", r
        assert r["figures"], r
        for name, value in r["figures"].items():
            assert math.isfinite(value) and value > 0, (r["step"], name, value)
        assert f"| {r['step']} | {r['device']} | {r['measured']} |" in proc.stdout
    (vllm,) = [r for r in rows if r["step"] == "vllm-lora"]
    assert vllm["status"] == "skipped: dry run: vLLM is GPU-only"
    train = [r for r in rows if r["step"] in ("train-tiny", "train-policy")]
    assert len(train) == 2 * len(gc.ROUTERS) and all(r["figures"]["iterations"] == 2 for r in train)
    assert {"tokens_per_s", "share_of_measured"} <= set(rows[-1]["figures"])  # generation, against the matmul peak


def test_without_cuda_and_without_dry_run_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--all", "--out", str(tmp_path)], capture_output=True,
                          text=True, env=_env(CUDA_VISIBLE_DEVICES=""), cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert "CUDA is not available" in proc.stderr and "--dry-run" in proc.stderr
    assert not (tmp_path / "gpu_check.json").exists()


def test_unknown_step_is_named(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "train-tiny,warp-drive", "--dry-run"],
                          capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and "warp-drive" in proc.stderr and "throughput" in proc.stderr


def test_flop_and_roofline_arithmetic():
    """2·N·tokens / seconds against the peaks, computed by hand."""
    gc = _module()
    # 1.5e6 matmul params, 4,000 tokens in 0.25 s: 2 * 1.5e6 * 4000 / 0.25 = 4.8e10 FLOP/s
    flops = gc.achieved_flops(1_500_000, 4_000, 0.25)
    assert flops == pytest.approx(4.8e10)
    assert gc.share(flops, 9.6e10) == pytest.approx(0.5)
    assert gc.share(flops, None) is None
    with pytest.raises(ValueError, match="seconds"):
        gc.achieved_flops(1, 1, 0.0)
    # nominal dense bf16 peaks from the device name torch reports
    assert gc.nominal_bf16_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gc.nominal_bf16_peak("NVIDIA H100 PCIe") == 756e12
    assert gc.nominal_bf16_peak("NVIDIA H100 NVL") == 835e12
    assert gc.nominal_bf16_peak("NVIDIA H200") == 989e12
    assert gc.nominal_bf16_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert gc.nominal_bf16_peak("NVIDIA L40S") == 362e12
    assert gc.nominal_bf16_peak("NVIDIA L4") == 121e12
    assert gc.nominal_bf16_peak("NVIDIA A10") == 125e12
    assert gc.nominal_bf16_peak("NVIDIA A10G") is None  # not on an NVIDIA datasheet: measured peak only
    assert gc.nominal_bf16_peak("cpu") is None


def test_matmul_params_by_hand():
    """Qwen2, hidden 32, MLP 64, 2 layers, 4 query / 2 KV heads (head dim 8), 262-token vocabulary."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

    gc = _module()
    h, m, kv, vocab = 32, 64, 2 * 8, 262
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * m + 2 * h  # q, k, v (with bias), o, MLP, 2 norms
    blocks = 2 * layer + h  # + the final norm
    cfg = dict(vocab_size=vocab, hidden_size=h, intermediate_size=m, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2)
    tied = Qwen2ForCausalLM(Qwen2Config(**cfg, tie_word_embeddings=True))
    assert gc.matmul_params(tied) == blocks + vocab * h  # the tied head is a matmul, counted once
    untied = Qwen2ForCausalLM(Qwen2Config(**cfg, tie_word_embeddings=False))
    assert gc.matmul_params(untied) == blocks + vocab * h  # the input table is left out, the head is in
    assert sum(p.numel() for p in untied.parameters()) == blocks + 2 * vocab * h
    cls = Qwen2ForSequenceClassification(Qwen2Config(**cfg, num_labels=1))
    assert gc.matmul_params(cls) == blocks + h  # the score head: hidden -> 1, no bias


def test_dpo_step_moves_the_adapter_and_lowers_the_loss():
    """The vLLM check's own DPO step: at a fresh adapter policy = reference (loss ln 2); one step moves
    only LoRA weights and lowers the loss on the same pairs."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rmroute.harness.pipelines.policy import TinySpec, build_tiny

    gc = _module()
    model, tok = build_tiny(TinySpec(hidden_size=32, intermediate_size=64))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = (model, tok, ["2+3=", "Say hi: "], ["5", "hi there"], ["7", "bye"])
    torch.manual_seed(0)
    first = gc.dpo_step(*args, lr=0.01)
    assert first == pytest.approx(math.log(2), abs=1e-6)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert moved and all("lora_" in n for n in moved)
    second = gc.dpo_step(*args, lr=0.01)
    assert second < first - 1e-4


def test_a_failing_step_is_a_row_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    """A step that raises gives a `failed:` row, the next steps run, the exit code is 1; a skipped step
    does not count as failed."""
    gc = _module()
    ran = []

    def boom(ctx):
        raise RuntimeError("no kernel image")

    def skip(ctx):
        raise gc.Skip("not here")

    def fine(ctx):
        ran.append(ctx.where)
        return [gc.Row("fine", ctx.where, "a figure", {"x": 2.0}, 0.1)]

    def nan(ctx):
        return [gc.Row("nan", ctx.where, "a bad figure", {"x": float("nan")}, 0.1)]

    for name, fn in (("boom", boom), ("skip", skip), ("fine", fine), ("nan", nan)):
        monkeypatch.setitem(gc.STEPS, name, fn)
    assert gc.main(["--steps", "boom,skip,fine", "--dry-run", "--out", str(tmp_path)]) == 1
    rows = {r["step"]: r for r in json.loads((tmp_path / "gpu_check.json").read_text())["rows"]}
    assert rows["boom"]["status"] == "failed: RuntimeError: no kernel image"
    assert rows["skip"]["status"] == "skipped: not here"
    assert rows["fine"]["status"] == "ok" and ran == ["cpu/float32"]
    assert "| boom | cpu/float32 |" in capsys.readouterr().out
    assert gc.main(["--steps", "skip,fine", "--dry-run", "--out", str(tmp_path)]) == 0
    assert gc.main(["--steps", "nan", "--dry-run", "--out", str(tmp_path)]) == 1
    (row,) = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert row["status"] == "failed: figures not finite and positive: x"
