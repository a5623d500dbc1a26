import pytest

from ttscale.config import PromptConfig
from ttscale.data.prompts import build_prompt_format, encode_prompt
from ttscale.errors import ConfigError
from ttscale.types import Problem

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def llama3_tokenizer():
    """A byte-level tokenizer that, like Llama 3's, adds BOS itself and whose template trims turns."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    fast.add_special_tokens({"additional_special_tokens": specials[2:]})
    fast.chat_template = LLAMA3_TEMPLATE
    return fast


PROBLEM = Problem(id="p", question="What is 2 + 3?", answer="5")


def test_llama3_prompt_keeps_step_delimiter_and_one_bos(llama3_tokenizer):
    fmt = build_prompt_format(PromptConfig(mode="chat"), "\n\n", llama3_tokenizer)
    partial = "## Step 1: Add\n2 + 3 = 5\n\n"
    ids = encode_prompt(llama3_tokenizer, fmt.render(PROBLEM) + partial)
    assert ids.count(llama3_tokenizer.bos_token_id) == 1 and ids[0] == llama3_tokenizer.bos_token_id
    assert llama3_tokenizer.decode(ids, skip_special_tokens=False).endswith("2 + 3 = 5\n\n")
    # The pitfall this avoids is real: re-rendering the partial through the template trims it,
    # and tokenizing the rendered string with special tokens doubles BOS.
    through_template = llama3_tokenizer.apply_chat_template(
        [{"role": "user", "content": PROBLEM.question}, {"role": "assistant", "content": partial}], tokenize=False
    )
    assert "2 + 3 = 5\n\n" not in through_template
    naive = llama3_tokenizer(fmt.render(PROBLEM))["input_ids"]
    assert naive.count(llama3_tokenizer.bos_token_id) == 2


def test_plain_text_still_gets_its_bos(llama3_tokenizer):
    ids = encode_prompt(llama3_tokenizer, "Question: 1+1")
    assert ids.count(llama3_tokenizer.bos_token_id) == 1


def test_completion_mode_exemplars_use_the_delimiter():
    fmt = build_prompt_format(PromptConfig(mode="completion", n_shot=3), "\n\n")
    text = fmt.render(PROBLEM)
    assert text.count("Question:") == 4 and text.endswith("Question: What is 2 + 3?\nSolution:\n")
    assert "Step 2:" in text and "\n\nStep 2:" in text and "Answer: \\boxed{" in text
    assert fmt.end_markers == ("\nQuestion:",)  # a blank line separates steps here, so it cannot end one
    with pytest.raises(ConfigError, match="step_delimiter"):
        build_prompt_format(PromptConfig(mode="completion"), "###")


def test_a_blank_line_ends_a_completion_mode_solution_whose_steps_have_none():
    fmt = build_prompt_format(PromptConfig(mode="completion", n_shot=2), "\n")
    solutions = fmt.render(PROBLEM).split("Question: ")[1:-1]
    # the exemplars: steps on their own lines, then one blank line before the next question
    assert all(s.endswith("\n\n") and "\n\n" not in s.removesuffix("\n\n") for s in solutions)
    assert fmt.end_markers == ("\nQuestion:", "\n\n")
    assert build_prompt_format(PromptConfig(mode="chat"), "\n").end_markers == ()


def test_chat_mode_uses_reference_system_prompt(smollm2):
    fmt = build_prompt_format(PromptConfig(mode="chat"), "\n\n", smollm2.tokenizer)
    text = fmt.render(PROBLEM)
    assert "Solve the following math problem efficiently and clearly" in text
    assert "I hope it is correct." in text and text.rstrip().endswith("assistant")
