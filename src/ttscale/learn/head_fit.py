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

from ttscale.errors import DataError, ModelLoadError
from ttscale.verifiers.prm_format import IGNORE, PRMLayout, tokenize_row


def classifier(model: Any) -> Any:
    """The token-classification head: the model's one direct `nn.Linear` child with 2 outputs."""
    import torch

    heads = [m for _, m in model.named_children() if isinstance(m, torch.nn.Linear) and m.out_features == 2]
    if len(heads) != 1:
        raise ModelLoadError(f"{type(model).__name__} has {len(heads)} 2-output linear heads; --fit head needs one")
    return heads[0]


def features(model: Any, tokenized: Iterable[dict[str, Any]], progress: bool = True) -> tuple[Any, Any]:
    """(X, y): the head's input at every labelled token, one row each, and that token's label."""
    import torch
    from tqdm.auto import tqdm

    head, seen = classifier(model), []
    hook = head.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0]))
    xs, ys = [], []
    try:
        with torch.inference_mode():
            for row in tqdm(list(tokenized), desc="features", unit="row", disable=not progress):
                labels = torch.tensor(row["labels"], dtype=torch.float32)
                keep = labels != IGNORE
                seen.clear()
                model(input_ids=torch.tensor([row["input_ids"]], device=head.weight.device))
                xs.append(seen[0][0][keep.to(seen[0].device)].float().cpu())
                ys.append(labels[keep])
    finally:
        hook.remove()
    return torch.cat(xs), torch.cat(ys)


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
    tokenized = [tokenize_row(r, tokenizer, layout, max_length) for r in rows]
    tokenized = [t for t in tokenized if any(v != IGNORE for v in t["labels"])]
    if not tokenized:
        raise DataError(f"max_length={max_length} cuts off every labelled step; raise --max-length")
    x, y = features(model, tokenized, progress)
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
