"""Skywork-o1-Open-PRM (Qwen2.5-Math 1.5B/7B + value head): sigmoid of a scalar head at each step end.

As in SkyworkAI/skywork-o1-prm-inference (io_utils.prepare_input): the prompt is
`tokenizer.encode(bos_token + problem + "\\n")`; the response is split on the step
token "\\n" and every piece is tokenized on its own and followed by the "\\n" token
id, where the reward is read (an empty piece is that token alone). ttscale's steps
are joined with "\\n"; a step holding several lines is scored at its last line.

The value head is trl's ValueHead: dropout (identity at inference) then
`summary = Linear(hidden, 1)` on the base model's last hidden state; the released
checkpoints store it as `v_head.summary.weight` / `v_head.summary.bias` next to the
base weights. Assumption: these tokenizers define a BOS (the reference code would
fail on None); without one the prompt starts directly with the problem. The head
runs in float32 on the upcast hidden state (the reference keeps it in the model dtype).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.errors import ModelLoadError
from ttscale.types import Problem
from ttscale.verifiers._hf import HFVerifier
from ttscale.verifiers.encoding import Encoded


def value_head(hidden_size: int) -> Any:
    """trl's ValueHead at inference: its state dict keys are `summary.weight`, `summary.bias`."""
    from torch import nn

    head = nn.Module()
    head.summary = nn.Linear(hidden_size, 1)
    return head


def read_value_head_weights(directory: Path) -> dict[str, Any]:
    """The `v_head.*` tensors of a checkpoint directory, prefix dropped."""
    from safetensors import safe_open

    found: dict[str, Any] = {}
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                if key.startswith("v_head."):
                    found[key[len("v_head.") :]] = f.get_tensor(key)
    if not found:
        import torch

        for file in sorted(directory.glob("*.bin")):
            state = torch.load(file, map_location="cpu", weights_only=True)
            found.update({k[len("v_head.") :]: v for k, v in state.items() if k.startswith("v_head.")})
    return found


def checkpoint_dir(name_or_path: str) -> Path:
    from ttscale.models.loading import resolve_source

    source, _ = resolve_source(name_or_path, None)
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    try:  # the files are already in the hub cache: from_pretrained just fetched them
        return Path(snapshot_download(source, allow_patterns=["*.safetensors", "*.bin", "*.json"]))
    except Exception as e:  # noqa: BLE001 - hub errors have many types; all mean "not found"
        raise ModelLoadError(f"could not locate the files of '{name_or_path}': {e}") from None


class SkyworkPRM(HFVerifier):
    name = "skywork"
    default_model = "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B"
    step_token = "\n"

    def __init__(
        self,
        cfg: Any = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        v_head: Any = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        self.v_head = v_head
        super().__init__(cfg, model=model, tokenizer=tokenizer, kv_cache_bytes=kv_cache_bytes)

    def _load(self, name_or_path: str, device: str, dtype: str) -> tuple[Any, Any]:
        from transformers import AutoModel

        from ttscale.models.loading import load_pretrained

        # AutoModel: the base without lm_head, so no vocabulary logits are ever computed
        model, tokenizer = load_pretrained(AutoModel, name_or_path, None, device, dtype)
        weights = read_value_head_weights(checkpoint_dir(name_or_path))
        if "summary.weight" not in weights:
            raise ModelLoadError(
                f"'{name_or_path}' has no value head (no 'v_head.summary.weight' in its weights); "
                "accepted: a Skywork-o1-Open-PRM checkpoint"
            )
        head = value_head(model.config.hidden_size)
        head.load_state_dict(weights)
        self.v_head = head
        return model, tokenizer

    def _setup(self) -> None:
        import torch

        if self.v_head is None:
            raise ModelLoadError("skywork: a model passed in needs its value head too (v_head=...)")
        self.base = getattr(self.model, "base_model", self.model)
        self.v_head = self.v_head.to(device=self.device, dtype=torch.float32).eval()
        self.step_token_id = int(self.tokenizer.encode(self.step_token)[-1])

    def _modules_for_params(self) -> Any:
        from torch import nn

        return nn.ModuleList([self.model, self.v_head])

    def encode(self, problem: Problem, steps: Sequence[str]) -> Encoded:
        bos = self.tokenizer.bos_token or ""
        ids = [int(i) for i in self.tokenizer.encode(bos + problem.question + "\n")]
        positions = []
        for step in steps:
            for line in step.split(self.step_token):
                ids += [int(i) for i in self.tokenizer.encode(line)] if line else []
                ids.append(self.step_token_id)
            positions.append(len(ids) - 1)
        return Encoded(ids, positions)

    def read(self, input_ids: Any, attention_mask: Any, rows: Any, cols: Any, **model_kwargs: Any) -> Any:
        import torch

        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask, **model_kwargs)[0]
        picked = hidden[rows, cols].float()
        return torch.sigmoid(self.v_head.summary(picked).squeeze(-1))
