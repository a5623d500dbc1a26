"""A judge that writes a short verification of each step before its verdict: a generative PRM.

ThinkPRM (Khalifa et al. 2025, arXiv 2504.16828) and GenPRM (Zhao et al. 2025, arXiv 2504.00891)
let a language model verify a step in words first and read the verdict after; the written check is
what a single yes/no question (`lm_judge`) lacks. Here any chat model can judge, the policy
included (the default, like `lm_judge`): for step k the judge reads the problem, the steps before
it (each with its own check and a "yes" verdict, teacher-forced as in `lm_judge`) and step k, and
writes up to `verifier.think_tokens` tokens greedily, stopping where it starts its verdict. The
step's score is P(" yes") / (P(" yes") + P(" no")) read after "Verdict:" appended to that check.

A check depends only on the step and what precedes it, and decoding is greedy, so each check is
written once per (question, steps so far) and kept: a step's score does not change when later steps
are appended, and a later round reads the whole conversation in one pass (with the incremental
scoring cache of the other judges). What the judge costs is counted: `count_tokens` charges an
item the tokens of every check written for it (its prompt read, its tokens written) on top of the
verdict pass, so the budget's verifier tokens and FLOPs include the thinking.

Checks are decoded in batches, rows left-padded; on hardware where padding moves a matmul's low
bits a greedy check can differ with its batch, as a bfloat16 policy's samples can.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from ttscale.config import VerifierConfig
from ttscale.types import Problem
from ttscale.verifiers.encoding import Encoded, encode_chat_with_replies
from ttscale.verifiers.lm_judge import LMJudge

SYSTEM_PROMPT = (
    "You are a careful math teacher. You check a student's solution one step at a time. "
    "For each step, check its reasoning and arithmetic in one or two short sentences, then end with "
    "'Verdict: yes' if the step is correct or 'Verdict: no' if it contains a mistake."
)
QUESTION = "Check this step, then give your verdict."
VERDICT = "Verdict:"
CHECKS_KEPT = 100_000  # written checks remembered (a few hundred bytes each); the oldest is forgotten first
CHECKS_PER_BATCH = 16


class ThinkingJudge(LMJudge):
    name = "think_judge"
    yes_words = (" yes", " Yes")
    no_words = (" no", " No")
    reply = " yes"

    def __init__(self, cfg: VerifierConfig | None = None, *, model: Any = None, tokenizer: Any = None,
                 kv_cache_bytes: int | None = None) -> None:
        # (question, steps up to and including the checked one) -> (the check, tokens read and written for it)
        self._checks: OrderedDict[tuple[str, tuple[str, ...]], tuple[str, int]] = OrderedDict()
        super().__init__(cfg, model=model, tokenizer=tokenizer, kv_cache_bytes=kv_cache_bytes)
        self.think_tokens = self.cfg.think_tokens

    def _turns(self, problem: Problem, steps: Sequence[str]) -> list[dict[str, str]]:
        """The conversation up to step k's question, k = len(steps) - 1 (earlier checks must be written)."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for k, step in enumerate(steps):
            head = f"Problem: {problem.question}\n\nFirst step:\n" if k == 0 else "Next step:\n"
            messages.append({"role": "user", "content": f"{head}{step}\n\n{QUESTION}"})
            if k < len(steps) - 1:
                check = self._checks[(problem.question, tuple(steps[: k + 1]))][0]
                messages.append({"role": "assistant", "content": self._answer(check)})
        return messages

    def _answer(self, check: str) -> str:
        return f"{check}\n{VERDICT}{self.reply}" if check else f"{VERDICT}{self.reply}"

    def messages(self, problem: Problem, steps: Sequence[str]) -> list[dict[str, str]]:
        self._write_checks([problem], [steps])
        full = self._turns(problem, steps)
        last = self._checks[(problem.question, tuple(steps))][0] if steps else ""
        return full + [{"role": "assistant", "content": self._answer(last)}] if steps else full

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        messages = self.messages(problem, steps)
        # each verdict is read where " yes" starts, after the check and "Verdict:"
        leads = [len(m["content"]) - len(self.reply) for m in messages if m["role"] == "assistant"]
        ids, positions = encode_chat_with_replies(self.tokenizer, messages, leads)
        return Encoded(ids, positions)

    def score(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        spent = self._write_checks(problems, steps)
        out = super().score(problems, steps)
        for key, tokens in spent.items():
            self._last_lengths[key] = self._last_lengths.get(key, 0) + tokens
        return out

    def _write_checks(self, problems: Sequence[Problem], steps: Sequence[Sequence[str]]) -> dict[tuple[str, tuple[str, ...]], int]:
        """Write every check the items lack, step by step (a check reads the ones before it); per item,
        the tokens spent on the checks written for it here."""
        spent: dict[tuple[str, tuple[str, ...]], int] = {}
        for depth in range(max((len(s) for s in steps), default=0)):
            owners: dict[tuple[str, tuple[str, ...]], tuple[Problem, tuple[str, ...]]] = {}
            for problem, item in zip(problems, steps):
                key = (problem.question, tuple(item[: depth + 1]))
                if len(item) > depth and key not in self._checks:
                    owners.setdefault(key, (problem, tuple(item)))
            written = self._generate([self._turns(p, item[: depth + 1]) for p, item in owners.values()])
            for (key, (problem, item)), (check, tokens) in zip(owners.items(), written):
                self._checks[key] = (check, tokens)
                spent[(problem.question, item)] = spent.get((problem.question, item), 0) + tokens
        while len(self._checks) > CHECKS_KEPT:
            self._checks.popitem(last=False)
        return spent

    def _generate(self, conversations: list[list[dict[str, str]]]) -> list[tuple[str, int]]:
        """(check, prompt + written tokens) per conversation, decoded greedily until the verdict starts."""
        import torch

        prompts = [self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                   for c in conversations]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        out: list[tuple[str, int]] = [("", 0)] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), CHECKS_PER_BATCH):
            batch = order[start : start + CHECKS_PER_BATCH]
            width = max(len(encoded[i]) for i in batch)
            ids = torch.tensor([[self.pad_id] * (width - len(encoded[i])) + encoded[i] for i in batch],
                               device=self.device)
            mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in batch],
                                device=self.device)
            with torch.inference_mode():
                gen = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, top_k=None,
                                          top_p=None, temperature=None, max_new_tokens=self.think_tokens,
                                          stop_strings=[VERDICT], tokenizer=self.tokenizer, pad_token_id=self.pad_id)
            for row, i in enumerate(batch):
                new = gen[row, width:].tolist()
                written = next((k for k, t in enumerate(new) if t == self.pad_id), len(new))
                text = self.tokenizer.decode(new[:written], skip_special_tokens=True)
                out[i] = (text.split(VERDICT)[0].strip(), len(encoded[i]) + written)
        return out
