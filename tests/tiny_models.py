"""Tiny Hugging Face models and tokenizers built from config (no downloads), shared by tests."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a an is are what how why answer question response good bad yes no because so it "
    "one two three four five six seven eight nine ten plus minus times equals number cat dog "
    "paris france capital city of in on to and or please explain briefly helpful harmful"
).split()
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(folder: Path, chat: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "<|user|>", "<|assistant|>", "<|end|>"]
    vocab = {tok: i for i, tok in enumerate(special + WORDS + [str(d) for d in range(10)] + list(".,?!:"))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", vocab["[BOS]"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
        additional_special_tokens=special[4:],
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def llama_config(vocab_size: int, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=2, eos_token_id=3, **kw,
    )


def build_seqcls(folder: Path, chat: bool = True, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, chat)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(llama_config(len(tok), num_labels=1))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def build_causal_lm(folder: Path, chat: bool = False, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, chat)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(len(tok)))
    model.save_pretrained(folder, safe_serialization=True)
    return folder
