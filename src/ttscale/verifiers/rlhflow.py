"""RLHFlow PRMs (Llama3.1-8B-PRM-Deepseek-Data / -Mistral-Data): steps as chat turns, "+" as the reply.

As trained (model card; RLHF-Reward-Modeling/math-rm/prm_evaluate.py): the first user
turn is the problem, a space and the first step; every later step is its own user
turn; each user turn is answered by the assistant with "+". A step's score is the
softmax of the "+" and "-" logits at the position that predicts its "+" reply. The
card runs one forward pass per prefix and reads position -3; causality makes one
pass over the whole conversation give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.types import Problem
from ttscale.verifiers._hf import CandidateTokenVerifier
from ttscale.verifiers.encoding import Encoded, encode_chat_with_replies, last_token_id


class RLHFlowPRM(CandidateTokenVerifier):
    name = "rlhflow"
    default_model = "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data"
    good_token = "+"
    bad_token = "-"

    def _setup(self) -> None:
        # the card's `tokenizer.encode("+")[-1]`: the BOS it adds is dropped by [-1]
        self.good_ids = [last_token_id(self.tokenizer, self.good_token)]
        self.bad_ids = [last_token_id(self.tokenizer, self.bad_token)]

    def messages(self, problem: Problem, steps: Sequence[str]) -> list[dict[str, str]]:
        messages = []
        for k, step in enumerate(steps):
            text = f"{problem.question} {step}" if k == 0 else step
            messages += [{"role": "user", "content": text}, {"role": "assistant", "content": self.good_token}]
        return messages

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        ids, positions = encode_chat_with_replies(self.tokenizer, self.messages(problem, steps))
        return Encoded(ids, positions)
