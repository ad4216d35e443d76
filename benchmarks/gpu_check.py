"""GPU path check for the Hugging Face reward-model backends (run on a CUDA machine; nothing depends on it).

Checks, with models built from config (no downloads):
  1. placement: `device: auto` puts hf-seqcls / hf-loglik on CUDA, `dtype: auto` gives bfloat16;
  2. agreement: bf16-on-CUDA scores against float32-on-CPU scores of the same weights;
  3. throughput: hf-seqcls items/s, bf16 CUDA vs float32 CUDA vs float32 CPU, same inputs;
  4. generation: tokens/s of `generate` on a small Llama-style causal LM in bf16 (the policy-training
     path's cost), batch 64.
Prints a table and writes gpu_check.json into $OUT (or the current folder).

    python benchmarks/gpu_check.py [--items 2048] [--hidden 1024] [--layers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, repeats=3):
    import torch

    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--cpu-items", type=int, default=128)
    args = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from rmroute.reward_models.hf import HFLogLikRM, HFSeqClsRM
    from tests.tiny_models import WORDS, build_tokenizer

    out: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    rng = np.random.default_rng(0)
    prompts = [" ".join(rng.choice(WORDS, size=int(rng.integers(10, 60)))) for _ in range(args.items)]
    responses = [" ".join(rng.choice(WORDS, size=int(rng.integers(40, 400)))) for _ in range(args.items)]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rm"
        tok = build_tokenizer(folder, chat=True)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                          num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                          num_key_value_heads=args.hidden // 64, max_position_embeddings=2048,
                          pad_token_id=0, bos_token_id=2, eos_token_id=3)
        torch.manual_seed(0)
        cls_cfg = LlamaConfig(**{k: v for k, v in cfg.to_dict().items() if k not in ('id2label', 'label2id')}, num_labels=1)
        LlamaForSequenceClassification(cls_cfg).save_pretrained(folder)
        out["rm_params_M"] = round(sum(p.numel() for p in LlamaForSequenceClassification.from_pretrained(folder).parameters()) / 1e6, 1)

        auto = HFSeqClsRM(str(folder), batch_size=64, max_length=1024)
        s_auto = auto.score(prompts, responses)
        param = next(auto._model.parameters())
        out["placement"] = {"device": str(param.device), "dtype": str(param.dtype), "finite": bool(np.isfinite(s_auto).all())}

        cpu = HFSeqClsRM(str(folder), device="cpu", dtype="float32", batch_size=16, max_length=1024)
        n = args.cpu_items
        s_cpu = cpu.score(prompts[:n], responses[:n])
        diff = np.abs(s_auto[:n] - s_cpu)
        out["agreement_bf16_cuda_vs_fp32_cpu"] = {
            "n": n, "max_abs": float(diff.max()), "pearson": float(np.corrcoef(s_auto[:n], s_cpu)[0, 1]),
            "score_std": float(s_cpu.std()),
        }
        fp32 = HFSeqClsRM(str(folder), dtype="float32", batch_size=64, max_length=1024)
        fp32.score(prompts[:64], responses[:64])  # warm-up / load
        t_bf16 = timed(lambda: auto.score(prompts, responses))
        t_fp32 = timed(lambda: fp32.score(prompts, responses))
        t_cpu = timed(lambda: cpu.score(prompts[:n], responses[:n]), repeats=1)
        out["seqcls_items_per_s"] = {
            "cuda_bf16": args.items / t_bf16, "cuda_fp32": args.items / t_fp32, "cpu_fp32": n / t_cpu,
            "bf16_vs_fp32": t_fp32 / t_bf16, "bf16_cuda_vs_cpu": (n / t_cpu) and (args.items / t_bf16) / (n / t_cpu),
        }

        lm_folder = Path(tmp) / "lm"
        build_tokenizer(lm_folder, chat=False)
        LlamaForCausalLM(cfg).save_pretrained(lm_folder)
        lm = HFLogLikRM(str(lm_folder), batch_size=64)
        s_lm = lm.score(prompts[:256], responses[:256])
        p = next(lm._model.parameters())
        out["loglik"] = {"device": str(p.device), "dtype": str(p.dtype), "finite": bool(np.isfinite(s_lm).all()),
                         "items_per_s": 256 / timed(lambda: lm.score(prompts[:256], responses[:256]))}

        model = LlamaForCausalLM.from_pretrained(lm_folder, dtype=torch.bfloat16).to("cuda" if torch.cuda.is_available() else "cpu").eval()
        gb = min(64, len(prompts))
        batch = tok([prompts[i] for i in range(gb)], return_tensors="pt", padding=True, padding_side="left").to(model.device)
        new = 128

        def gen():
            with torch.inference_mode():
                model.generate(**batch, max_new_tokens=new, min_new_tokens=new, do_sample=True, top_p=0.9,
                               temperature=1.0, pad_token_id=0)

        gen()
        t_gen = timed(gen)
        out["generate"] = {"batch": gb, "new_tokens": new, "tokens_per_s": gb * new / t_gen, "s_per_batch": t_gen}

    print(json.dumps(out, indent=2))
    dest = Path(os.environ.get("OUT", "."))
    (dest / "gpu_check.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
