"""`train-prm --fit head`: the PRM's 2-class head fitted on the frozen policy's features.

Fine-tuning runs the body forward and backward on every optimizer step; with the body frozen the
features the head sees never change, so they are computed once, in one forward pass over the data,
and the head is then a logistic regression on them: fitted to convergence by L-BFGS on the same
objective (`soft_cross_entropy` at the labelled step-separator tokens) with an L2 penalty. That is a
linear probe of the policy's own last hidden state (Alain and Bengio 2016), as a PRM: the head is
written into the token-classification model's own classifier, so the saved PRM is scored by
`trained_prm` exactly as a fine-tuned one is. Whether a probe has more signal per CPU-minute than
fine-tuning is an empirical question (bench/learned_prm.py --fit head).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ttscale.errors import ModelLoadError
from ttscale.learn.train import collate, tokenized_rows
from ttscale.verifiers.prm_format import IGNORE, PRMLayout


def classifier(model: Any) -> Any:
    """The token-classification head: the model's one direct `nn.Linear` child with 2 outputs."""
    import torch

    heads = [m for _, m in model.named_children() if isinstance(m, torch.nn.Linear) and m.out_features == 2]
    if len(heads) != 1:
        raise ModelLoadError(f"{type(model).__name__} has {len(heads)} 2-output linear heads; --fit head needs one")
    return heads[0]


# Rows run together up to this many tokens a forward pass (padded to the longest): one row at a time the
# body's matmuls see a few hundred rows of activations, too few to keep 2 cores' GEMMs busy.
FEATURE_TOKENS = 4096


def features(model: Any, tokenized: Iterable[dict[str, Any]], pad_id: int, progress: bool = True) -> tuple[Any, Any]:
    """(X, y): the head's input at every labelled token, one row each, and that token's label, in the rows'
    order. Rows are batched by length and right-padded: a causal model's padding comes after every real
    token, so it changes none of their features (beyond a GEMM's last bits)."""
    import torch
    from tqdm.auto import tqdm

    rows = list(tokenized)
    head, seen = classifier(model), []
    hook = head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    pad = collate(pad_id)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    found: dict[int, tuple[Any, Any]] = {}
    bar = tqdm(total=len(rows), desc="features", unit="row", disable=not progress)
    try:
        with torch.inference_mode():
            while order:
                take, width = 1, len(rows[order[0]]["input_ids"])
                while take < len(order) and max(width, len(rows[order[take]]["input_ids"])) * (take + 1) <= FEATURE_TOKENS:
                    width = max(width, len(rows[order[take]]["input_ids"]))
                    take += 1
                batch, order = order[:take], order[take:]
                padded = pad([rows[i] for i in batch])
                seen.clear()
                model(input_ids=padded["input_ids"].to(head.weight.device),
                      attention_mask=padded["attention_mask"].to(head.weight.device))
                hidden = seen[0].float().cpu()
                for j, i in enumerate(batch):
                    keep = padded["labels"][j] != IGNORE
                    found[i] = hidden[j][keep], padded["labels"][j][keep]
                bar.update(len(batch))
    finally:
        hook.remove()
        bar.close()
    return torch.cat([found[i][0] for i in range(len(rows))]), torch.cat([found[i][1] for i in range(len(rows))])


def fit_logistic(x: Any, y: Any, l2: float, iterations: int, intercept: bool = True) -> tuple[Any, Any, list[float]]:
    """(w, b, losses): min over w, b of mean soft cross-entropy of sigmoid(x @ w + b) against y,
    plus l2 / 2 * |w|^2 on standardised features, by L-BFGS; w and b are returned for the raw features.
    Without an intercept b stays 0 and the features are scaled but not centred (centring is an intercept)."""
    import torch

    mean = x.mean(0) if intercept else torch.zeros(x.shape[1])
    std = (x - mean).pow(2).mean(0).sqrt().clamp(min=1e-6)
    z = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=intercept)
    z64, y64 = z.double(), y.double()
    losses: list[float] = []

    def objective() -> Any:
        logits = z64 @ w + b
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y64) + l2 / 2 * (w * w).sum()

    opt = torch.optim.LBFGS([w, b] if intercept else [w], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

    def closure() -> Any:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    opt.step(closure)
    with torch.no_grad():
        raw_w = (w / std.double()).float()
        raw_b = (b - (mean.double() / std.double() * w).sum()).float()
    return raw_w, raw_b, losses


def fit_head(model: Any, tokenizer: Any, rows: list[dict[str, Any]], layout: PRMLayout, max_length: int | None,
             l2: float, iterations: int, progress: bool = True) -> list[float]:
    """Fit `model`'s head in place on the frozen body's features at the rows' labelled tokens; the losses."""
    import torch

    model.eval()
    x, y = features(model, tokenized_rows(rows, tokenizer, layout, max_length), tokenizer.pad_token_id, progress)
    head = classifier(model)
    w, b, losses = fit_logistic(x, y, l2, iterations, intercept=head.bias is not None)
    with torch.no_grad():
        # p(good) = softmax(head(h))[1] = sigmoid(logit_1 - logit_0): class 0 kept at zero, class 1 the fit.
        head.weight.zero_()
        head.weight[1] = w.to(head.weight)
        if head.bias is not None:
            head.bias.zero_()
            head.bias[1] = b.to(head.bias)
    return losses
