"""Generators: the ``transformers`` generator on the tiny policy, the ``vllm`` generator against a
fake ``vllm`` module (real vLLM cannot be installed here), and their registration.

Greedy outputs are checked against an independent hand-written greedy loop (one prompt at a time,
no padding, argmax of the last logits), not against the generator's own earlier output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from rmroute.harness.core.errors import ConfigError, PluginError

REPO = Path(__file__).resolve().parent.parent
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def policy():
    from rmroute.harness.pipelines.policy import load_policy

    return load_policy({"model": "tiny"}, device="cpu")


@pytest.fixture(scope="module")
def prompts(policy):
    return [policy.format_prompt(t) for t in ("hi", "what is two plus two, please?", "name a city")]


def manual_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> tuple[str, int]:
    """Greedy decoding of one unpadded prompt by argmax of the last position; (text, tokens incl. EOS)."""
    ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    eos = tokenizer.eos_token_id
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(input_ids=torch.tensor([ids + new])).logits[0, -1]
            nxt = int(torch.argmax(logits))
            new.append(nxt)
            if nxt == eos:
                break
    return tokenizer.decode(new, skip_special_tokens=True), len(new)


def make(policy, **params):
    from rmroute.harness.core.plugins import create

    return create("generator", "transformers", model=policy.model, tokenizer=policy.tokenizer, **params)


# ---- registration -------------------------------------------------------------------------------
def test_both_generators_registered_with_descriptions():
    from rmroute.harness.core.plugins import get_registry

    reg = get_registry()
    for name in ("transformers", "vllm"):
        entry = reg.get("generator", name)
        assert entry.plugin == "builtin-generators"
        assert entry.metadata["description"]


def test_plugin_module_imports_neither_torch_nor_vllm():
    code = "import sys, rmroute.generators.plugin; print(sorted(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- transformers: correctness -----------------------------------------------------------------
def test_greedy_matches_hand_written_loop_in_prompt_order(policy, prompts):
    gen = make(policy, temperature=0, max_new_tokens=8, batch_size=4)  # 3 prompts x 2 = 6 rows, 2 chunks
    out = gen.generate(prompts, n=2, seed=0)
    expected = [manual_greedy(policy.model, policy.tokenizer, p, 8) for p in prompts]
    assert [len(o) for o in out] == [2, 2, 2]
    for got, (text, _) in zip(out, expected):
        assert got == [text, text]
    assert gen.stats["tokens"] == 2 * sum(k for _, k in expected)
    assert gen.stats["calls"] == 2 and gen.stats["seconds"] > 0


def test_peft_wrapped_model_generates_like_its_base_at_init(policy, prompts):
    import copy

    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(policy.model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    from rmroute.generators.hf import TransformersGenerator

    gen = TransformersGenerator(peft_model, policy.tokenizer, temperature=0, max_new_tokens=6)
    expected = [manual_greedy(policy.model, policy.tokenizer, p, 6)[0] for p in prompts[:2]]
    assert gen.generate(prompts[:2], n=1, seed=0) == [[e] for e in expected]  # LoRA B starts at 0


def test_stop_string_cuts_before_first_occurrence(policy, prompts):
    full = [manual_greedy(policy.model, policy.tokenizer, p, 10)[0] for p in prompts]
    # a printable character from inside the first completion, so the cut is non-trivial
    stop = next(ch for ch in full[0][1:] if ch.isprintable() and ch != "\ufffd")
    gen = make(policy, temperature=0, max_new_tokens=10, stop=[stop])
    out = gen.generate(prompts, n=1, seed=0)
    for got, text in zip(out, full):
        cut = text.find(stop)
        want = text if cut < 0 else text[:cut]
        # generation stops at the stop string, so the text before it is all that matters
        assert got[0] == want


def test_top_k_is_off_by_default(policy, prompts):
    # the tiny random model's next-token distribution is close to uniform over 262 tokens:
    # 600 one-token samples show far more than transformers' default top_k=50 distinct tokens
    gen = make(policy, temperature=1.0, max_new_tokens=1, batch_size=600)
    ids = set(gen.generate(prompts[:1], n=600, seed=3)[0])
    assert len(ids) > 60
    gen_k = make(policy, temperature=1.0, max_new_tokens=1, batch_size=600, top_k=5)
    assert len(set(gen_k.generate(prompts[:1], n=600, seed=3)[0])) <= 5


def test_seeded_and_global_rng_untouched(policy, prompts):
    gen = make(policy, temperature=1.0, max_new_tokens=6, batch_size=4)
    torch.manual_seed(1234)
    before = torch.get_rng_state().clone()
    a = gen.generate(prompts, n=2, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    b = gen.generate(prompts, n=2, seed=7)
    c = gen.generate(prompts, n=2, seed=8)
    assert a == b
    assert a != c
    assert a[0][0] != a[0][1]  # the n samples of one prompt differ
    torch.manual_seed(1234)
    assert torch.equal(torch.get_rng_state(), before)


def test_eval_mode_during_call_and_train_mode_restored(policy, prompts):
    seen: list[bool] = []
    handle = policy.model.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    try:
        gen = make(policy, temperature=0, max_new_tokens=2)
        policy.model.train()
        gen.generate(prompts[:1], n=1, seed=0)
        assert policy.model.training
        policy.model.eval()
        gen.generate(prompts[:1], n=1, seed=0)
        assert not policy.model.training
    finally:
        handle.remove()
        policy.model.eval()
    assert seen and not any(seen)


def test_sync_is_noop_and_generation_follows_live_weights(prompts):
    from rmroute.harness.pipelines.policy import load_policy

    pol = load_policy({"model": "tiny", "tiny": {"seed": 5}}, device="cpu")
    gen = make(pol, temperature=0, max_new_tokens=6)
    before = gen.generate(prompts, n=1, seed=0)
    with torch.no_grad():
        pol.model.lm_head.weight.mul_(-1.0)  # an "update": argmax tokens change
    gen.sync(pol.model)
    after = gen.generate(prompts, n=1, seed=0)
    assert after != before
    assert after == [[manual_greedy(pol.model, pol.tokenizer, p, 6)[0]] for p in prompts]


def test_bos_not_doubled(policy):
    from rmroute.generators.hf import TransformersGenerator

    gen = TransformersGenerator(policy.model, policy.tokenizer)
    bos = policy.tokenizer.bos_token
    enc = gen._encode([bos + "hi", "hi"])
    ids = enc["input_ids"].tolist()
    assert ids[0].count(policy.tokenizer.bos_token_id) == 1


# ---- transformers: bad input -------------------------------------------------------------------
@pytest.mark.parametrize("params, key", [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                                         ({"batch_size": 0}, "batch_size"), ({"max_new_tokens": 0}, "max_new_tokens")])
def test_bad_params_name_the_key(policy, params, key):
    with pytest.raises(ConfigError, match=f"generator 'transformers'.*{key}"):
        make(policy, **params)


def test_unknown_param_lists_allowed(policy):
    with pytest.raises(ConfigError, match="unknown key 'temprature'.*temperature"):
        make(policy, temprature=0.5)


def test_bad_prompts_and_n(policy):
    gen = make(policy, max_new_tokens=1)
    with pytest.raises(ValueError, match="not one string"):
        gen.generate("hi", n=1, seed=0)
    with pytest.raises(ValueError, match=r"prompts\[1\] must be a string"):
        gen.generate(["hi", 3], n=1, seed=0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        gen.generate(["hi"], n=0, seed=0)


# ---- vllm --------------------------------------------------------------------------------------
def test_vllm_missing_names_the_extra(policy, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    with pytest.raises(PluginError, match=r"pip install 'rmroute\[gpu\]'"):
        from rmroute.harness.core.plugins import create

        create("generator", "vllm", model=policy.model, tokenizer=policy.tokenizer, model_path=str(REPO))


class FakeVllm:
    """A stand-in ``vllm`` module that records what the generator asks of it."""

    def __init__(self) -> None:
        self.llm_kwargs: dict = {}
        self.calls: list[dict] = []
        mod = types.ModuleType("vllm")
        fake = self

        class SamplingParams:
            def __init__(self, **kw):
                self.kw = kw

        class LoRARequest:
            def __init__(self, lora_name, lora_int_id, lora_path):
                self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path
                # what vLLM would read when it loads this adapter
                self.saw_config = (Path(lora_path) / "adapter_config.json").is_file()

        class LLM:
            def __init__(self, **kw):
                fake.llm_kwargs = kw

            def generate(self, requests, sampling, lora_request=None, use_tqdm=True):
                fake.calls.append({"requests": requests, "sampling": sampling.kw, "lora": lora_request})
                n = sampling.kw["n"]
                outs = []
                for r, _req in enumerate(requests):
                    comps = [types.SimpleNamespace(text=f"r{r}s{j}", token_ids=[1] * (j + 1)) for j in range(n)]
                    outs.append(types.SimpleNamespace(outputs=comps))
                return outs

        mod.SamplingParams, mod.LoRARequest, mod.LLM = SamplingParams, LoRARequest, LLM
        self.module = mod


@pytest.fixture
def fake_vllm(monkeypatch):
    fake = FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    return fake


@pytest.fixture(scope="module")
def peft_policy(policy):
    import copy

    from peft import LoraConfig, get_peft_model

    return get_peft_model(copy.deepcopy(policy.model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))


def test_vllm_engine_and_sampling_params(fake_vllm, policy, prompts, tmp_path):
    from rmroute.generators.vllm_gen import VllmGenerator

    gen = VllmGenerator(policy.model, policy.tokenizer, model_path=str(tmp_path), tensor_parallel_size=2,
                        gpu_memory_utilization=0.3, dtype="bfloat16", temperature=0.8, top_p=0.9,
                        max_new_tokens=7, stop=["\n\n"])
    assert fake_vllm.llm_kwargs == {"model": str(tmp_path), "tensor_parallel_size": 2, "gpu_memory_utilization": 0.3,
                                    "dtype": "bfloat16", "seed": 0}
    out = gen.generate(prompts[:2], n=3, seed=11)
    assert out == [["r0s0", "r0s1", "r0s2"], ["r1s0", "r1s1", "r1s2"]]
    call = fake_vllm.calls[-1]
    assert call["sampling"] == {"n": 3, "max_tokens": 7, "seed": 11, "skip_special_tokens": True,
                                "temperature": 0.8, "top_p": 0.9, "stop": ["\n\n"]}
    assert call["lora"] is None
    want_ids = [policy.tokenizer(p)["input_ids"] for p in prompts[:2]]
    assert [r["prompt_token_ids"] for r in call["requests"]] == want_ids
    assert gen.stats["tokens"] == 2 * (1 + 2 + 3)
    gen.generate(prompts[:1], n=1, seed=11, max_new_tokens=4)  # a per-call limit reaches SamplingParams
    assert fake_vllm.calls[-1]["sampling"]["max_tokens"] == 4


def test_vllm_greedy_sends_n_copies(fake_vllm, policy, prompts, tmp_path):
    from rmroute.generators.vllm_gen import VllmGenerator

    gen = VllmGenerator(policy.model, policy.tokenizer, model_path=str(tmp_path), temperature=0)
    out = gen.generate(prompts[:2], n=2, seed=0)
    call = fake_vllm.calls[-1]
    assert call["sampling"]["n"] == 1 and call["sampling"]["temperature"] == 0.0
    assert len(call["requests"]) == 4
    assert out == [["r0s0", "r1s0"], ["r2s0", "r3s0"]]


def test_vllm_sync_exports_adapter_with_new_id(fake_vllm, policy, peft_policy, prompts, tmp_path):
    from rmroute.generators.vllm_gen import VllmGenerator

    gen = VllmGenerator(peft_policy, policy.tokenizer, model_path=str(tmp_path), enable_lora=True, max_lora_rank=8)
    assert fake_vllm.llm_kwargs["enable_lora"] is True and fake_vllm.llm_kwargs["max_lora_rank"] == 8
    first = gen.lora_request
    assert first.lora_int_id == 1 and first.saw_config  # synced once when built
    with torch.no_grad():
        for name, p in peft_policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
                break
    gen.sync(peft_policy)
    second = gen.lora_request
    assert second.lora_int_id == 2 and second.lora_name != first.lora_name and second.saw_config
    assert not Path(first.lora_path).exists()  # the old export is cleaned up
    from safetensors.torch import load_file

    saved = load_file(str(Path(second.lora_path) / "adapter_model.safetensors"))
    live = peft_policy.state_dict()  # live keys carry the adapter name: ...lora_B.default.weight
    assert saved and all(torch.equal(v, live[k.replace(".weight", ".default.weight")]) for k, v in saved.items())
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)  # the update is in the export
    assert json.loads((Path(second.lora_path) / "adapter_config.json").read_text())["r"] == 4
    gen.generate(prompts[:1], n=1, seed=0)
    assert fake_vllm.calls[-1]["lora"] is second
    tmp = gen._tmp
    gen.close()
    assert not tmp.exists()


def test_vllm_refuses_mismatched_lora_setup(fake_vllm, policy, peft_policy, tmp_path):
    from rmroute.generators.vllm_gen import VllmGenerator

    gen = VllmGenerator(policy.model, policy.tokenizer, model_path=str(tmp_path))
    with pytest.raises(ConfigError, match="enable_lora is false"):
        gen.sync(peft_policy)
    gen.sync(policy.model)  # full model, no LoRA: nothing to sync
    gen_l = VllmGenerator(policy.model, policy.tokenizer, model_path=str(tmp_path), enable_lora=True)
    with pytest.raises(ConfigError, match="not a PEFT model"):
        gen_l.sync(policy.model)


def test_vllm_model_path_required(fake_vllm, policy, tmp_path):
    from rmroute.generators.vllm_gen import VllmGenerator

    with pytest.raises(ConfigError, match="model_path is required"):
        VllmGenerator(policy.model, policy.tokenizer)
    with pytest.raises(ConfigError, match="not a local folder"):
        VllmGenerator(policy.model, policy.tokenizer, model_path=str(tmp_path / "missing"))


def test_max_new_tokens_per_call_and_between_calls(policy, prompts):
    # the evaluation suites pass ``max_new_tokens`` per call; the generator's own limit stays
    gen = make(policy, temperature=0, max_new_tokens=8)
    want3 = [[manual_greedy(policy.model, policy.tokenizer, prompts[0], 3)[0]]]
    assert gen.generate(prompts[:1], n=1, seed=0, max_new_tokens=3) == want3
    assert gen.params.max_new_tokens == 8
    assert gen.generate(prompts[:1], n=1, seed=0) == [[manual_greedy(policy.model, policy.tokenizer, prompts[0], 8)[0]]]
    gen.params.max_new_tokens = 3  # and the params can still be changed between calls
    assert gen.generate(prompts[:1], n=1, seed=0) == want3
