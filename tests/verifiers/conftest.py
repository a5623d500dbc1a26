"""Tiny randomly initialised PRMs of each family's architecture, with tokenizers that have its special tokens.

Tokenizers: the SmolLM2 byte-level BPE (from the embedded model's cache dir) stands in
for the Llama 3 and Qwen2.5 tokenizers, given each family's special tokens and chat
template; Math-Shepherd needs a sentencepiece-style tokenizer (BOS added, "▁" word
prefixes, " ки" one token), so a small Metaspace BPE is trained in the test.
"""

from __future__ import annotations

import pytest

from ttscale.types import Problem

# Llama 3.1's template reduced to what the PRM reads: BOS, headers, trimmed contents, <|eot_id|>.
LLAMA3_TEMPLATE = (
    "{{- '<|begin_of_text|>' }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

PROBLEMS = [
    Problem(id="p0", question="Tom has 5 apples. He buys 4 more. How many apples does he have now?", answer="9"),
    Problem(id="p1", question="What is 12 / 4 + 7?", answer="10"),
]
STEPS = [
    ["Step 1: Tom buys 4 more apples, so 5 + 4 = 9.", "Step 2: He has 9 apples now.", "Answer: \\boxed{9}"],
    ["12 / 4 = 3.", "Then 3 + 7 = 11.\nSo the result is 11.", "The answer is 11."],
]


@pytest.fixture(scope="session")
def sample():
    """(problems, steps): two short solutions, one with a multi-line step."""
    return PROBLEMS, STEPS


@pytest.fixture(scope="session")
def smollm2_dir():
    from ttscale.models.loading import resolve_source

    return resolve_source("embedded:smollm2", None)[0]


def _tokenizer(smollm2_dir, specials, template=None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    tok.add_special_tokens({"additional_special_tokens": specials})
    if template is not None:
        tok.chat_template = template
    return tok


def _tiny_config(cls, vocab_size, **extra):
    return cls(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.4,  # wide random logits, so reading a wrong position shows
        **extra,
    )


@pytest.fixture(scope="session")
def llama3_prm(smollm2_dir):
    """(LlamaForCausalLM, tokenizer) shaped like RLHFlow/Llama3.1-8B-PRM-*."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _tokenizer(smollm2_dir, LLAMA3_SPECIALS, LLAMA3_TEMPLATE)
    torch.manual_seed(0)
    model = LlamaForCausalLM(_tiny_config(LlamaConfig, len(tok), tie_word_embeddings=False)).eval()
    return model, tok


@pytest.fixture(scope="session")
def smol_judge(smollm2_dir):
    """(tiny random LlamaForCausalLM, the SmolLM2 tokenizer) for lm_judge format tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    torch.manual_seed(1)
    return LlamaForCausalLM(_tiny_config(LlamaConfig, len(tok), tie_word_embeddings=True)).eval(), tok


def sentencepiece_like_tokenizer(texts):
    """A Mistral-style tokenizer: BOS added, words prefixed with "▁", newlines their own token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n"), "isolated"),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    alphabet = sorted(set("".join(texts)) | set("+-ки"))
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=alphabet)
    tok.train_from_iterator(list(texts) * 3 + ["ки + -"], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="session")
def mistral_prm():
    """(MistralForCausalLM, tokenizer) shaped like peiyi9979/math-shepherd-mistral-7b-prm."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    texts = [p.question for p in PROBLEMS] + [s for steps in STEPS for s in steps]
    tok = sentencepiece_like_tokenizer(texts)
    torch.manual_seed(2)
    model = MistralForCausalLM(_tiny_config(MistralConfig, len(tok), tie_word_embeddings=False)).eval()
    return model, tok


@pytest.fixture(scope="session")
def qwen_token_classifier(smollm2_dir):
    """(Qwen2ForTokenClassification with 2 labels, tokenizer with <extra_0> and ChatML) like Qwen2.5-Math-PRM."""
    import torch
    from transformers import Qwen2Config, Qwen2ForTokenClassification

    tok = _tokenizer(smollm2_dir, ["<extra_0>"])  # SmolLM2's template renders system/user/assistant as ChatML
    torch.manual_seed(3)
    model = Qwen2ForTokenClassification(_tiny_config(Qwen2Config, len(tok), num_labels=2)).eval()
    return model, tok


@pytest.fixture(scope="session")
def qwen_value_model(smollm2_dir):
    """(Qwen2ForCausalLM, tokenizer, value head) like Skywork-o1-Open-PRM-Qwen-2.5-1.5B."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from ttscale.verifiers.skywork import value_head

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    torch.manual_seed(4)
    model = Qwen2ForCausalLM(_tiny_config(Qwen2Config, len(tok))).eval()
    head = value_head(32)
    with torch.no_grad():
        head.summary.weight.normal_(0, 0.5)
    return model, tok, head


@pytest.fixture(scope="session")
def http_rules():
    """An `http` verifier whose server (serve-verifier's app, in a thread on loopback) runs arithmetic_rules."""
    pytest.importorskip("fastapi")
    from ttscale.config import VerifierConfig
    from ttscale.server.process import verifier_in_thread
    from ttscale.verifiers import build_verifier
    from ttscale.verifiers.http import HTTPVerifier

    with verifier_in_thread(build_verifier(VerifierConfig(name="arithmetic_rules"))) as url:
        remote = HTTPVerifier(VerifierConfig(name="http", base_url=url))
        yield remote
        remote.close()
