"""PRMs trained by `ttscale learn train-prm`: a 2-class token head read at each step's separator.

The layout (separator, BOS) is read from the ttscale_prm.json saved with the weights,
and items are tokenized by the same function the trainer used, so a step is scored at
exactly the token its label sat on. A step's score is the softmax's positive class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError
from ttscale.types import Problem
from ttscale.verifiers._hf import HFVerifier
from ttscale.verifiers.encoding import Encoded
from ttscale.verifiers.prm_format import PRMLayout, encode_steps


class TrainedPRM(HFVerifier):
    name = "trained_prm"

    def __init__(
        self, cfg: VerifierConfig | None = None, *, model: Any = None, tokenizer: Any = None,
        layout: PRMLayout | None = None,
    ) -> None:
        cfg = cfg or VerifierConfig(name=self.name)
        if model is None and not cfg.model:
            raise ConfigError("verifier 'trained_prm' needs verifier.model: the output dir of `ttscale learn train-prm`")
        if layout is None:
            layout = PRMLayout.load(cfg.model) if model is None and cfg.model else PRMLayout()
        self.layout = layout
        super().__init__(cfg, model=model, tokenizer=tokenizer)

    def _load(self, name_or_path: str, device: str, dtype: str) -> tuple[Any, Any]:
        from transformers import AutoModelForTokenClassification

        from ttscale.models.loading import load_pretrained

        return load_pretrained(AutoModelForTokenClassification, name_or_path, None, device, dtype)

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        ids, positions = encode_steps(self.tokenizer, problem.question, steps, self.layout)
        return Encoded(ids, positions)

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs).logits
        return logits[rows, cols].float().softmax(dim=-1)[:, self.layout.positive_label]
