"""Format fidelity: each PRM family scores exactly like its model card's reference code.

Each reference below is a straightforward re-implementation of the card's snippet
(one sequence per forward pass, full logits, the card's token look-ups), run on a
tiny random model of the family's architecture; ttscale must match it while batching,
padding and computing only the candidate logits.
"""

from __future__ import annotations

import pytest
import torch

from ttscale.config import VerifierConfig
from ttscale.verifiers import Verifier
from ttscale.verifiers.lm_judge import LMJudge
from ttscale.verifiers.math_shepherd import MathShepherdPRM
from ttscale.verifiers.qwen_prm import QwenPRM
from ttscale.verifiers.rlhflow import RLHFlowPRM
from ttscale.verifiers.skywork import SkyworkPRM

TOL = 1e-5


def cfg(name: str, max_tokens: int = 8192) -> VerifierConfig:
    return VerifierConfig(name=name, max_tokens_per_batch=max_tokens)


# ---- references, written from the model cards -------------------------------------------------


def rlhflow_reference(model, tok, question, steps):
    """RLHF-Reward-Modeling prm_evaluate.py / search-and-learn `_score_single`: one pass per prefix, read -3."""
    plus, minus = tok.encode("+")[-1], tok.encode("-")[-1]
    scores, conversation = [], []
    for k, step in enumerate(steps):
        text = question + " " + step if k == 0 else step
        conversation += [{"content": text, "role": "user"}, {"content": "+", "role": "assistant"}]
        ids = tok.apply_chat_template(conversation, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[:, -3, [plus, minus]]
        scores.append(logits.softmax(dim=-1)[0, 0].item())
    return scores


def math_shepherd_reference(model, tok, question, steps):
    """The card: f"{question} {output}", steps end in " ки", scores at input_id == step_tag_id."""
    candidate_tokens = tok.encode("+ -")[1:]
    step_tag_id = tok.encode("ки")[-1]
    output = "".join(f"{s} ки\n" for s in steps[:-1]) + f"{steps[-1]} ки"
    input_id = torch.tensor([tok.encode(f"{question} {output}")])
    with torch.no_grad():
        logits = model(input_id).logits[:, :, candidate_tokens]
    scores = logits.softmax(dim=-1)[:, :, 0]
    return scores[input_id == step_tag_id].tolist()


def qwen_prm_reference(model, tok, question, steps):
    """The card: system/user/assistant chat, steps joined by <extra_0>, make_step_rewards class 1."""
    messages = [
        {"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
    ]
    conversation_str = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    input_ids = torch.tensor([tok.encode(conversation_str)])
    with torch.no_grad():
        logits = model(input_ids=input_ids)[0]
    token_masks = input_ids == tok.encode("<extra_0>")[0]
    probabilities = torch.softmax(logits, dim=-1) * token_masks.unsqueeze(-1)
    sample = probabilities[0]
    return sample[sample != 0].view(-1, 2)[:, 1].tolist()


def skywork_reference(model, head, tok, question, steps):
    """skywork-o1-prm-inference: prepare_input(step_token="\\n"), v_head on hidden_states[-1], sigmoid."""
    prompt_ids = tok.encode(tok.bos_token + question + "\n")
    step_token_id = tok.encode("\n")[-1]
    response_ids, flags = [], [0] * len(prompt_ids)
    for step in "\n".join(steps).split("\n"):
        step_ids = (tok.encode(step) if step != "" else []) + [step_token_id]
        response_ids += step_ids
        flags += [0] * (len(step_ids) - 1) + [1]
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
        rewards = torch.sigmoid(head.summary(hidden).squeeze(-1))[0]
    per_line = [rewards[i].item() for i, f in enumerate(flags) if f == 1]
    # ttscale reports one score per step: the reward at the end of the step's last line
    ends, k = [], -1
    for step in steps:
        k += step.count("\n") + 1
        ends.append(per_line[k])
    return ends


def judge_reference(model, tok, question, steps):
    """lm_judge's own design, computed the slow way: one prefix per pass, full logits, read before "yes"."""
    from ttscale.verifiers.lm_judge import QUESTION, SYSTEM_PROMPT

    yes = sorted({tok.encode(w)[0] for w in ("yes", "Yes")})
    no = sorted({tok.encode(w)[0] for w in ("no", "No")})
    conversation, scores = [{"role": "system", "content": SYSTEM_PROMPT}], []
    for k, step in enumerate(steps):
        head = f"Problem: {question}\n\nFirst step:\n" if k == 0 else "Next step:\n"
        conversation.append({"role": "user", "content": f"{head}{step}\n\n{QUESTION}"})
        prompt = tok.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(prompt).logits[0, -1]
        p = logits.softmax(-1)
        scores.append((p[yes].sum() / (p[yes].sum() + p[no].sum())).item())
        conversation.append({"role": "assistant", "content": "yes"})
    return scores


# ---- the verifiers under test ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def PROBLEMS(sample):
    return sample[0]


@pytest.fixture(scope="module")
def STEPS(sample):
    return sample[1]


@pytest.fixture(scope="module")
def families(llama3_prm, mistral_prm, qwen_token_classifier, qwen_value_model, smol_judge):
    """name -> (verifier factory taking max_tokens, reference(question, steps))."""
    llama, llama_tok = llama3_prm
    mistral, mistral_tok = mistral_prm
    qwen, qwen_tok = qwen_token_classifier
    sky, sky_tok, head = qwen_value_model
    judge, judge_tok = smol_judge
    return {
        "rlhflow": (
            lambda n: RLHFlowPRM(cfg("rlhflow", n), model=llama, tokenizer=llama_tok),
            lambda q, s: rlhflow_reference(llama, llama_tok, q, s),
        ),
        "math_shepherd": (
            lambda n: MathShepherdPRM(cfg("math_shepherd", n), model=mistral, tokenizer=mistral_tok),
            lambda q, s: math_shepherd_reference(mistral, mistral_tok, q, s),
        ),
        "qwen_prm": (
            lambda n: QwenPRM(cfg("qwen_prm", n), model=qwen, tokenizer=qwen_tok),
            lambda q, s: qwen_prm_reference(qwen, qwen_tok, q, s),
        ),
        "skywork": (
            lambda n: SkyworkPRM(cfg("skywork", n), model=sky, tokenizer=sky_tok, v_head=head),
            lambda q, s: skywork_reference(sky, head, sky_tok, q, s),
        ),
        "lm_judge": (
            lambda n: LMJudge(cfg("lm_judge", n), model=judge, tokenizer=judge_tok),
            lambda q, s: judge_reference(judge, judge_tok, q, s),
        ),
    }


NAMES = ["rlhflow", "math_shepherd", "qwen_prm", "skywork", "lm_judge"]


@pytest.mark.parametrize("name", NAMES)
def test_scores_equal_the_model_card_reference(families, name, PROBLEMS, STEPS):
    make, reference = families[name]
    got = make(8192).score(PROBLEMS, STEPS)
    for problem, steps, scores in zip(PROBLEMS, STEPS, got):
        expected = reference(problem.question, steps)
        assert len(scores) == len(steps)
        assert scores == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("name", NAMES)
def test_a_step_score_does_not_change_when_later_steps_are_appended(families, name, PROBLEMS, STEPS):
    verifier = families[name][0](8192)
    steps = STEPS[0]
    full = verifier.score([PROBLEMS[0]], [steps])[0]
    for k in range(1, len(steps)):
        assert verifier.score([PROBLEMS[0]], [steps[:k]])[0] == pytest.approx(full[:k], abs=TOL)


@pytest.mark.parametrize("name", NAMES)
def test_batching_and_padding_do_not_change_scores(families, name, PROBLEMS, STEPS):
    make = families[name][0]
    problems = PROBLEMS * 3
    steps = [STEPS[0], STEPS[1], STEPS[0][:1], STEPS[1][:2], STEPS[0][:2], STEPS[1][:1]]
    one_by_one = make(1).score(problems, steps)  # budget 1: every item alone
    batched = make(100_000).score(problems, steps)
    for a, b, s in zip(one_by_one, batched, steps):
        assert len(a) == len(s)
        assert a == pytest.approx(b, abs=TOL)


@pytest.mark.parametrize("name", NAMES)
def test_contract(families, name, PROBLEMS, STEPS):
    verifier = families[name][0](8192)
    assert isinstance(verifier, Verifier) and verifier.name == name
    scores = verifier.score(PROBLEMS + PROBLEMS[:1], STEPS + [[]])
    assert scores[-1] == []
    assert all(0.0 <= x <= 1.0 for row in scores for x in row)
    assert verifier.count_tokens(PROBLEMS[0], STEPS[0]) == len(verifier.encode(PROBLEMS[0], STEPS[0]).input_ids)
    assert verifier.count_tokens(PROBLEMS[0], STEPS[0]) > verifier.count_tokens(PROBLEMS[0], STEPS[0][:1]) > 0
    assert verifier.count_tokens(PROBLEMS[0], []) == 0
    assert verifier.n_params > 0


def test_rlhflow_reads_the_position_before_each_plus(llama3_prm, PROBLEMS, STEPS):
    model, tok = llama3_prm
    encoded = RLHFlowPRM(cfg("rlhflow"), model=model, tokenizer=tok).encode(PROBLEMS[0], STEPS[0])
    plus, eot = tok.encode("+")[-1], tok.convert_tokens_to_ids("<|eot_id|>")
    assert len(encoded.positions) == 3
    for p in encoded.positions:
        assert encoded.input_ids[p + 1] == plus and encoded.input_ids[p + 2] == eot
    assert encoded.input_ids[0] == tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert encoded.input_ids.count(encoded.input_ids[0]) == 1  # never a doubled BOS


def test_math_shepherd_reads_the_step_tags_even_when_a_step_contains_one(mistral_prm, PROBLEMS, STEPS):
    model, tok = mistral_prm
    verifier = MathShepherdPRM(cfg("math_shepherd"), model=model, tokenizer=tok)
    encoded = verifier.encode(PROBLEMS[0], STEPS[0])
    tag = tok.encode("ки")[-1]
    assert [encoded.input_ids[p] for p in encoded.positions] == [tag] * 3
    assert encoded.input_ids[0] == tok.bos_token_id
    tricky = verifier.encode(PROBLEMS[0], ["a step mentioning ки here", "b"])
    assert tricky.positions == [i for i, t in enumerate(tricky.input_ids) if t == tag][1:]


def test_qwen_prm_reads_the_separators(qwen_token_classifier, PROBLEMS, STEPS):
    model, tok = qwen_token_classifier
    verifier = QwenPRM(cfg("qwen_prm"), model=model, tokenizer=tok)
    encoded = verifier.encode(PROBLEMS[0], STEPS[0])
    sep = tok.convert_tokens_to_ids("<extra_0>")
    assert [encoded.input_ids[p] for p in encoded.positions] == [sep] * 3
    text = tok.decode(encoded.input_ids)
    assert text.startswith("<|im_start|>system\nPlease reason step by step")
    assert text.endswith("Answer: \\boxed{9}<extra_0><|im_end|>\n")


def test_skywork_reads_each_step_end(qwen_value_model, PROBLEMS, STEPS):
    model, tok, head = qwen_value_model
    verifier = SkyworkPRM(cfg("skywork"), model=model, tokenizer=tok, v_head=head)
    encoded = verifier.encode(PROBLEMS[1], STEPS[1])
    newline = tok.encode("\n")[-1]
    assert [encoded.input_ids[p] for p in encoded.positions] == [newline] * 3
    assert encoded.positions[-1] == len(encoded.input_ids) - 1
    assert verifier.n_params == sum(p.numel() for p in model.parameters()) + 33


def test_lm_judge_question_and_reply_layout(smol_judge, PROBLEMS, STEPS):
    model, tok = smol_judge
    encoded = LMJudge(cfg("lm_judge"), model=model, tokenizer=tok).encode(PROBLEMS[0], STEPS[0][:2])
    yes = tok.encode("yes")[0]
    assert [encoded.input_ids[p + 1] for p in encoded.positions] == [yes, yes]
    before = tok.decode(encoded.input_ids[: encoded.positions[0] + 1])
    assert before.endswith("Is this step correct? Answer yes or no.<|im_end|>\n<|im_start|>assistant\n")
