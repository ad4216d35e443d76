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


def build_bert_tokenizer(folder: Path, words: tuple[str, ...] | list[str] = WORDS):
    """A BERT-style WordLevel tokenizer ([CLS] text [SEP], lower-cased, no EOS token), like MiniLM's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(special + list(dict.fromkeys(words)) + [str(d) for d in range(10)] + list(".,?!:"))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=512,
    )
    fast.save_pretrained(folder)
    return fast


def build_tiny_bert(folder: Path, seed: int = 0, words: tuple[str, ...] | list[str] = WORDS) -> Path:
    """A tiny BERT encoder (hidden 32, 2 layers) with a BERT-style tokenizer, saved as a base checkpoint.

    Saved as ``BertModel`` (no classification head), as a sentence-embedding checkpoint such as
    all-MiniLM-L6-v2 is, so loading it for sequence classification adds a fresh head.
    """
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_bert_tokenizer(folder, words)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, pad_token_id=tok.pad_token_id,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


def byte_seqcls(folder: Path, seed: int) -> Path:
    """A random-weight Llama sequence classifier over the tiny policy's byte tokenizer: every distinct
    response gets its own score, so pairs never tie."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rmroute.harness.pipelines.policy import build_byte_tokenizer

    tok = build_byte_tokenizer()
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024, num_labels=1,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    return folder
