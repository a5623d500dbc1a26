"""Math-Shepherd PRM (peiyi9979/math-shepherd-mistral-7b-prm): plain text with a " ки" tag after each step.

As on the model card: the input is f"{question} {output}" where the output's steps
each end in " ки" and are joined by "\\n"; the card's tokenizer adds BOS. A step's
score is the softmax over the "+" and "-" logits read AT its tag token (the tag is
where the training labels "+"/"-" sat), the candidates being the card's
`tokenizer.encode("+ -")[1:]` (ids 648, 387 for the Mistral tokenizer). The tag
positions are found from character offsets, so a step that itself contains "ки"
cannot shift them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.types import Problem
from ttscale.verifiers._hf import CandidateTokenVerifier
from ttscale.verifiers.encoding import Encoded, token_at_char


class MathShepherdPRM(CandidateTokenVerifier):
    name = "math_shepherd"
    default_model = "peiyi9979/math-shepherd-mistral-7b-prm"
    good_token = "+"
    bad_token = "-"
    step_tag = "ки"

    def _setup(self) -> None:
        good, bad = self.tokenizer.encode(f"{self.good_token} {self.bad_token}", add_special_tokens=False)[-2:]
        self.good_ids, self.bad_ids = [int(good)], [int(bad)]

    def text_and_tag_ends(self, problem: Problem, steps: Sequence[str]) -> tuple[str, list[int]]:
        text, ends = f"{problem.question} ", []
        for k, step in enumerate(steps):
            text += f"{step} {self.step_tag}"
            ends.append(len(text))
            if k + 1 < len(steps):
                text += "\n"
        return text, ends

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        text, ends = self.text_and_tag_ends(problem, steps)
        enc = self.tokenizer(text, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        return Encoded(list(enc["input_ids"]), [token_at_char(offsets, end - 1) for end in ends])
