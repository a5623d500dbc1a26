"""Any chat causal LM as a step judge: P(yes) against P(no) when asked whether a step is correct.

Design: the judge reads the solution as a conversation, one user turn per
step ending in the question "Is this step correct?", each answered "yes" by the
assistant, the way RLHFlow's PRMs read steps with "+". A step's score is
P(yes) / (P(yes) + P(no)) at the position that predicts its reply, with "yes"/"Yes"
and "no"/"No" pooled. So the whole solution is scored in ONE forward pass and a
step's score cannot change when later steps are appended (the causal mask hides
them). The price: the judge sees earlier steps already answered "yes"
(teacher forcing), and the probe text costs ~15 tokens per step.

The rejected alternative, "solution so far + question" per step, gives the judge a
cleaner view but needs one pass per step (quadratic tokens) and is not
prefix-stable when batched as one sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.errors import ConfigError
from ttscale.types import Problem
from ttscale.verifiers._hf import CandidateTokenVerifier
from ttscale.verifiers.encoding import Encoded, encode_chat_with_replies

SYSTEM_PROMPT = (
    "You are a careful math teacher. You check a student's solution one step at a time. "
    "After each step, answer only yes if the step is correct, or no if it contains a mistake."
)
QUESTION = "Is this step correct? Answer yes or no."


class LMJudge(CandidateTokenVerifier):
    name = "lm_judge"
    default_model = "embedded:smollm2"
    yes_words = ("yes", "Yes")
    no_words = ("no", "No")
    reply = "yes"

    def _setup(self) -> None:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(
                f"verifier 'lm_judge' needs a chat model; '{self.cfg.model or self.default_model}' has no chat "
                "template (accepted: an instruct/chat model such as embedded:smollm2)"
            )

        def first_ids(words: Sequence[str]) -> list[int]:
            return sorted({int(self.tokenizer.encode(w, add_special_tokens=False)[0]) for w in words})

        self.good_ids, self.bad_ids = first_ids(self.yes_words), first_ids(self.no_words)

    def messages(self, problem: Problem, steps: Sequence[str]) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for k, step in enumerate(steps):
            head = f"Problem: {problem.question}\n\nFirst step:\n" if k == 0 else "Next step:\n"
            messages.append({"role": "user", "content": f"{head}{step}\n\n{QUESTION}"})
            messages.append({"role": "assistant", "content": self.reply})
        return messages

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        ids, positions = encode_chat_with_replies(self.tokenizer, self.messages(problem, steps))
        return Encoded(ids, positions)
