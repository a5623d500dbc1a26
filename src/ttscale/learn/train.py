"""`ttscale learn train-prm`: a process reward model as token classification at step separators.

The objective is TRL's PRMTrainer's: a 2-class head on every token, cross-entropy on the
last separator token of each step (label 1 = the step is good), nothing elsewhere. TRL
moved PRMTrainer to `trl.experimental.prm` (0.2x) and dropped it in 1.x; when it can be
imported (and the labels are hard) it trains the model, otherwise a plain transformers
Trainer runs the same objective on the same layout (`prm_format.tokenize_row`, a copy
of TRL's). Soft labels (Math-Shepherd's fraction) always take the plain path: TRL casts
labels to int, which would turn every fraction below 1 into 0; there the loss is the
cross-entropy against the soft target, equal to TRL's for 0/1 targets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttscale.errors import ConfigError, DataError, MissingDependencyError
from ttscale.verifiers.prm_format import IGNORE, PRMLayout, tokenize_row

log = logging.getLogger("ttscale")


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs; the defaults suit a small model on CPU."""

    fit: str = field(default="finetune", metadata={
        "help": "finetune (the Trainer: head and trainable blocks by AdamW) | head (the body frozen, its features "
                "computed once, the head fitted by L-BFGS: learn/head_fit.py)"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps (fit=head: L-BFGS iterations)"})
    learning_rate: float = field(default=2e-5, metadata={"help": "peak learning rate (linear decay)"})
    batch_size: int = field(default=4, metadata={"help": "rows per optimizer step (per device)"})
    max_length: int | None = field(default=1024, metadata={"help": "token cap of prompt + steps (TRL's default)"})
    step_separator: str = field(default="\n", metadata={
        "help": "text appended to each step; its last token is labelled (on the command line, \\n is a newline)"})
    trainable_layers: int | None = field(default=None, metadata={"help": "train only the head and the last K blocks"})
    seed: int = field(default=0, metadata={"help": "initialisation and shuffling seed"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    use_trl: bool = field(default=True, metadata={"help": "use TRL's PRMTrainer when it can be imported"})
    head_l2: float = field(default=1.0, metadata={"help": "fit=head: L2 penalty on the head (standardised features)"})

    def __post_init__(self) -> None:
        checks = [
            (self.fit in ("finetune", "head"), "fit", "finetune or head"),
            (self.fit == "finetune" or not self.trainable_layers, "trainable_layers", "none or 0 with fit=head"),
            (self.head_l2 >= 0, "head_l2", ">= 0"),
            (self.max_steps >= 1, "max_steps", "an integer >= 1"),
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (self.batch_size >= 1, "batch_size", "an integer >= 1"),
            (self.max_length is None or self.max_length >= 8, "max_length", "an integer >= 8 or none"),
            (self.step_separator != "", "step_separator", "a non-empty string"),
            (self.trainable_layers is None or self.trainable_layers >= 0, "trainable_layers", ">= 0 or none"),
            (self.device in ("auto", "cpu") or self.device.startswith("cuda"), "device", "auto, cpu, cuda, cuda:N"),
        ]
        for ok, name, accepted in checks:
            if not ok:
                raise ConfigError(f"train-prm {name}={getattr(self, name)!r} is invalid; accepted: {accepted}")


@dataclass(frozen=True)
class TrainOutcome:
    output: Path
    trainer: str
    n_rows: int
    steps: int
    losses: list[float]


# -- data ------------------------------------------------------------------------------
def load_stepwise(data: str | Path) -> list[dict[str, Any]]:
    """Rows with prompt / completions / labels from a label-steps dir, a saved dataset dir or a .jsonl file.
    A label is a bool, a float in [0, 1] (soft), or null: that step is read but left out of the loss."""
    from ttscale.learn.common import read_rows
    from ttscale.learn.labels import STEPS_JSONL

    path = Path(data)
    if path.is_dir() and (path / STEPS_JSONL).is_file():
        rows = read_rows(path / STEPS_JSONL)
    elif path.is_dir() and (path / "dataset_info.json").is_file():
        from datasets import load_from_disk

        rows = load_from_disk(str(path)).to_list()
    elif path.is_file() and path.suffix == ".jsonl":
        rows = read_rows(path)
    else:
        raise DataError(
            f"training data not found: {path}; accepted: a `ttscale learn label-steps` output dir, "
            "a saved datasets dir, or a .jsonl of {prompt, completions, labels} rows"
        )
    for i, r in enumerate(rows):
        if not all(k in r for k in ("prompt", "completions", "labels")):
            raise DataError(f"{path} row {i}: needs prompt, completions and labels; found {', '.join(r)}")
        if len(r["completions"]) != len(r["labels"]) or not r["labels"]:
            raise DataError(f"{path} row {i}: {len(r['completions'])} steps but {len(r['labels'])} labels")
        if all(v is None for v in r["labels"]):
            raise DataError(f"{path} row {i}: every label is null; a row needs at least one labelled step")
    if not rows:
        raise DataError(f"{path} holds no labelled rows")
    return rows


def hard_labels(rows: list[dict[str, Any]]) -> bool:
    """Every label a bool: TRL's PRMTrainer takes those only (no soft targets, no unlabelled steps)."""
    return all(isinstance(v, bool) for r in rows for v in r["labels"])


# -- model -----------------------------------------------------------------------------
def load_base(base: str, device: str) -> tuple[Any, Any]:
    """A 2-label token-classification model (fresh head on a causal LM's body) and its tokenizer."""
    from transformers import AutoModelForTokenClassification

    from ttscale.models.loading import load_pretrained

    model, tokenizer = load_pretrained(AutoModelForTokenClassification, base, None, device, "float32", num_labels=2)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.id2label, model.config.label2id = {0: "bad", 1: "good"}, {"bad": 0, "good": 1}
    return model, tokenizer


def freeze_body(model: Any, trainable_layers: int | None) -> None:
    """Keep the head (and the last K blocks with the final norm) trainable; K=None trains everything."""
    import torch

    if trainable_layers is None:
        return
    body = model.base_model
    body.requires_grad_(False)
    blocks = next(
        (m for m in body.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == model.config.num_hidden_layers),
        None,
    )
    if trainable_layers and blocks is not None:
        for block in blocks[len(blocks) - trainable_layers :]:
            block.requires_grad_(True)
        if getattr(body, "norm", None) is not None:
            body.norm.requires_grad_(True)


# -- trainers --------------------------------------------------------------------------
def trl_prm_trainer() -> tuple[Any, Any] | None:
    """(PRMTrainer, PRMConfig) from whichever TRL location has them, or None."""
    import importlib
    import warnings

    for module in ("trl", "trl.experimental.prm"):
        try:
            with warnings.catch_warnings():  # trl.experimental warns on import; that is the point of asking
                warnings.simplefilter("ignore")
                mod = importlib.import_module(module)
            return mod.PRMTrainer, mod.PRMConfig
        except (ImportError, AttributeError):
            continue
    return None


def collate(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """Tokenized rows -> right-padded input_ids, attention_mask and labels (IGNORE past each row's end)."""

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), float(IGNORE))
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(b["labels"], dtype=torch.float)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def soft_cross_entropy(logits: Any, labels: Any) -> Any:
    """Mean over labelled tokens of -[y log p(good) + (1 - y) log p(bad)]; TRL's cross-entropy for y in {0, 1}."""
    keep = labels != IGNORE
    logp = logits[keep].float().log_softmax(-1)
    y = labels[keep]
    return -(y * logp[:, 1] + (1 - y) * logp[:, 0]).mean()


def tokenized_rows(rows: list[dict[str, Any]], tokenizer: Any, layout: PRMLayout,
                   max_length: int | None) -> list[dict[str, Any]]:
    """The rows in TRL's token layout, less those whose every labelled step max_length cut off."""
    tokenized = [tokenize_row(r, tokenizer, layout, max_length) for r in rows]
    tokenized = [t for t in tokenized if any(v != IGNORE for v in t["labels"])]
    if not tokenized:
        raise DataError(f"max_length={max_length} cuts off every labelled step; raise --max-length")
    return tokenized


def _plain_trainer(model: Any, tokenizer: Any, rows: list[dict[str, Any]], args: Any, layout: PRMLayout,
                   max_length: int | None) -> Any:
    from transformers import Trainer

    class StepwiseTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = soft_cross_entropy(outputs.logits, labels)
            return (loss, outputs) if return_outputs else loss

    tokenized = tokenized_rows(rows, tokenizer, layout, max_length)
    return StepwiseTrainer(model=model, args=args, train_dataset=tokenized, data_collator=collate(tokenizer.pad_token_id))


def _training_args(cls: Any, output: Path, s: TrainSettings, **extra: Any) -> Any:
    return cls(
        output_dir=str(output / "checkpoints"), max_steps=s.max_steps, learning_rate=s.learning_rate,
        per_device_train_batch_size=s.batch_size, logging_steps=max(1, s.max_steps // 20), save_strategy="no",
        report_to="none", seed=s.seed, use_cpu=s.device == "cpu", remove_unused_columns=False,
        dataloader_num_workers=0, **extra,
    )


def train_prm(
    data: str | Path, base: str, output: str | Path, settings: TrainSettings | None = None, progress: bool = True
) -> TrainOutcome:
    """Train BASE as a PRM on DATA and save weights, tokenizer and ttscale_prm.json to OUTPUT."""
    s = settings or TrainSettings()
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "learn", "train-prm") from None
    rows = load_stepwise(data)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    transformers.set_seed(s.seed)
    model, tokenizer = load_base(base, s.device)
    if s.fit == "head":
        return _fit_head(model, tokenizer, rows, out, s, progress)
    freeze_body(model, s.trainable_layers)
    found = trl_prm_trainer() if s.use_trl and hard_labels(rows) else None
    if found is not None:
        import trl
        from datasets import Dataset

        PRMTrainer, PRMConfig = found
        name = f"trl {trl.__version__} PRMTrainer"
        args = _training_args(PRMConfig, out, s, step_separator=s.step_separator, max_length=s.max_length,
                              disable_tqdm=not progress)
        columns = [{k: r[k] for k in ("prompt", "completions", "labels")} for r in rows]
        trainer = PRMTrainer(model=model, args=args, train_dataset=Dataset.from_list(columns),
                             processing_class=tokenizer)
    else:
        name = f"transformers {transformers.__version__} Trainer (PRMTrainer objective)"
        args = _training_args(transformers.TrainingArguments, out, s, disable_tqdm=not progress)
        layout = PRMLayout(step_separator=s.step_separator)
        trainer = _plain_trainer(model, tokenizer, rows, args, layout, s.max_length)
    log.info("train-prm: %d rows, %s", len(rows), name)
    trainer.train()
    model.eval()
    _save_prm(out, model, tokenizer, s, name, trainer.state.log_history)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return TrainOutcome(out, name, len(rows), trainer.state.global_step, losses)


def _save_prm(out: Path, model: Any, tokenizer: Any, s: TrainSettings, trainer: str,
              history: list[dict[str, Any]]) -> None:
    """What `trained_prm` loads (weights, tokenizer, ttscale_prm.json) and the loss history beside it."""
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    PRMLayout(step_separator=s.step_separator, trainer=trainer).save(out)
    (out / "train_log.json").write_text(json.dumps(history, indent=2), encoding="utf-8")


def _fit_head(model: Any, tokenizer: Any, rows: list[dict[str, Any]], out: Path, s: TrainSettings,
              progress: bool) -> TrainOutcome:
    from ttscale.learn.head_fit import fit_head

    layout = PRMLayout(step_separator=s.step_separator)
    losses = fit_head(model, tokenizer, rows, layout, s.max_length, s.head_l2, s.max_steps, progress)
    name = f"head fit on frozen features (L-BFGS, l2={s.head_l2:g})"
    log.info("train-prm: %d rows, %s", len(rows), name)
    _save_prm(out, model, tokenizer, s, name, [{"step": i + 1, "loss": v} for i, v in enumerate(losses)])
    return TrainOutcome(out, name, len(rows), len(losses), losses)
