"""Qwen2.5-Math-PRM (7B/72B): a 2-class token head read at an `<extra_0>` after every step.

As on the model card: system "Please reason step by step, and put your final answer
within \\boxed{}.", the problem as the user turn, and the assistant turn
"<extra_0>".join(steps) + "<extra_0>"; the rendered chat is tokenized with
`tokenizer.encode`. A step's score is the softmax's class 1 ("positive") at its
separator.

Loading: the released checkpoints are `Qwen2ForProcessRewardModel` (remote code,
head Linear-ReLU-Linear to 2 labels), loaded with AutoModel and trust_remote_code, only when
verifier.trust_remote_code is set;
a checkpoint of any other architecture is loaded with AutoModelForTokenClassification
(e.g. a Qwen2ForTokenClassification with num_labels=2, which the tests build), with
the same label mapping: index 1 = the step is correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ttscale.errors import ModelLoadError
from ttscale.types import Problem
from ttscale.verifiers._hf import HFVerifier
from ttscale.verifiers.encoding import Encoded

REMOTE_CODE_ARCHITECTURES = {"Qwen2ForProcessRewardModel"}


class QwenPRM(HFVerifier):
    name = "qwen_prm"
    default_model = "Qwen/Qwen2.5-Math-PRM-7B"
    system_prompt = "Please reason step by step, and put your final answer within \\boxed{}."
    step_separator = "<extra_0>"
    positive_label = 1

    def _load(self, name_or_path: str, device: str, dtype: str) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoModelForTokenClassification, PretrainedConfig

        from ttscale.models.loading import load_pretrained, resolve_source

        source, _ = resolve_source(name_or_path, None)
        try:
            # the raw config.json: deciding which class to use must not run remote code
            raw, _ = PretrainedConfig.get_config_dict(source)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"could not load model '{name_or_path}': {e}") from None
        remote = REMOTE_CODE_ARCHITECTURES & set(raw.get("architectures") or ())
        if remote:
            # Opt-in: were it always on, a mistyped or hostile verifier.model would run its code.
            if not self.cfg.trust_remote_code:
                raise ModelLoadError(
                    f"verifier.model '{name_or_path}' ({', '.join(sorted(remote))}) needs the Python code shipped "
                    "with the model; set verifier.trust_remote_code=true if you trust its source"
                )
            return load_pretrained(AutoModel, name_or_path, None, device, dtype, trust_remote_code=True)
        return load_pretrained(AutoModelForTokenClassification, name_or_path, None, device, dtype)

    def _setup(self) -> None:
        self.separator_id = int(self.tokenizer.encode(self.step_separator, add_special_tokens=False)[0])

    def messages(self, problem: Problem, steps: Sequence[str]) -> list[dict[str, str]]:
        # a separator inside a step would add a score; it carries no meaning in a step's text
        clean = [s.replace(self.step_separator, "") for s in steps]
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": problem.question},
            {"role": "assistant", "content": self.step_separator.join(clean) + self.step_separator},
        ]

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        text = self.tokenizer.apply_chat_template(self.messages(problem, steps), tokenize=False)
        ids = [int(i) for i in self.tokenizer.encode(text)]
        return Encoded(ids, [i for i, t in enumerate(ids) if t == self.separator_id])

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs)
        logits = out.logits if getattr(out, "logits", None) is not None else out[0]
        return logits[rows, cols].float().softmax(dim=-1)[:, self.positive_label]
