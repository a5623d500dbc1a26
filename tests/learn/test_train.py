"""train-prm on a tiny random model: the objective, the saved PRM, and the trained_prm verifier reading it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ttscale.config import VerifierConfig
from ttscale.errors import ConfigError, DataError, ModelLoadError
from ttscale.learn.train import TrainSettings, freeze_body, load_base, soft_cross_entropy, train_prm
from ttscale.types import Problem
from ttscale.verifiers import Verifier, build_verifier
from ttscale.verifiers.prm_format import LAYOUT_FILE, PRMLayout, encode_steps, tokenize_row

QUESTION = "Tom has 5 apples. He buys 4 more. How many apples does he have?"
GOOD, BAD = "so 5 + 4 = 9.", "so 5 + 4 = 11 wrong."


def write_rows(path, n=8, soft=False):
    rows = []
    for i in range(n):
        steps = [GOOD, BAD] if i % 2 else [GOOD, GOOD, "Answer: \\boxed{9}"]
        labels = [s == GOOD or "boxed" in s for s in steps]
        rows.append({"id": f"p{i}", "prompt": QUESTION, "completions": steps,
                     "labels": [0.75 * v for v in labels] if soft else labels})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fast(**kw):
    return TrainSettings(**{"max_steps": 3, "batch_size": 2, "device": "cpu", "learning_rate": 1e-3, **kw})


def test_soft_cross_entropy_is_trls_cross_entropy_on_hard_labels():
    import torch

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 2)
    labels = torch.tensor([[-100, 1, -100, 0, 1], [0, -100, -100, -100, 1]])
    ce = torch.nn.CrossEntropyLoss()(logits.view(-1, 2), labels.view(-1))
    assert soft_cross_entropy(logits, labels.float()).item() == pytest.approx(ce.item(), abs=1e-6)
    soft = torch.tensor([[0.5, -100.0]])
    both = torch.tensor([[[0.3, -0.2], [9.0, 9.0]]])
    expected = -(0.5 * both[0, 0].log_softmax(-1)).sum()
    assert soft_cross_entropy(both, soft).item() == pytest.approx(expected.item(), abs=1e-6)


def test_train_saves_a_prm_that_the_verifier_registry_loads(tiny_base, tmp_path):
    out = train_prm(write_rows(tmp_path / "d.jsonl"), tiny_base, tmp_path / "prm", fast(), progress=False)
    assert out.steps == 3 and out.n_rows == 8 and out.losses and "Trainer" in out.trainer
    layout = json.loads((tmp_path / "prm" / LAYOUT_FILE).read_text())
    assert layout["step_separator"] == "\n" and layout["positive_label"] == 1 and layout["trainer"] == out.trainer
    verifier = build_verifier(VerifierConfig(name="trained_prm", model=str(tmp_path / "prm"), device="cpu"))
    assert isinstance(verifier, Verifier) and verifier.name == "trained_prm" and verifier.n_params > 0
    problems = [Problem("a", QUESTION, "9"), Problem("b", "What is 2 + 2?", "4")]
    scores = verifier.score(problems + problems[:1], [[GOOD, BAD, "Answer: \\boxed{9}"], ["2 + 2 = 4."], []])
    assert [len(s) for s in scores] == [3, 1, 0]
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for row in scores for x in row)
    # a step is scored where the trainer put its label
    item = verifier.encode(problems[0], [GOOD, BAD])
    row = tokenize_row({"prompt": QUESTION, "completions": [GOOD, BAD], "labels": [True, False]},
                       verifier.tokenizer, PRMLayout(), None)
    assert item.input_ids == row["input_ids"]
    assert item.positions == [i for i, v in enumerate(row["labels"]) if v != -100]


def test_trained_prm_scores_are_causal_and_batch_independent(tiny_base, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from ttscale.verifiers.trained_prm import TrainedPRM

    model = AutoModelForTokenClassification.from_pretrained(tiny_base).eval()
    tok = AutoTokenizer.from_pretrained(tiny_base)
    def make(budget):
        return TrainedPRM(VerifierConfig(name="trained_prm", max_tokens_per_batch=budget), model=model, tokenizer=tok)

    p = Problem("a", QUESTION, "9")
    steps = [GOOD, BAD, "Answer: \\boxed{11}"]
    full = make(8192).score([p], [steps])[0]
    for k in range(1, 3):
        assert make(8192).score([p], [steps[:k]])[0] == pytest.approx(full[:k], abs=1e-5)
    items = [steps, steps[:1], steps[:2]]
    for alone, batched in zip(make(1).score([p] * 3, items), make(100_000).score([p] * 3, items)):
        assert alone == pytest.approx(batched, abs=1e-5)
    assert make(8192).count_tokens(p, steps) == len(encode_steps(tok, QUESTION, steps, PRMLayout())[0])


def test_training_learns_to_separate_good_from_bad_steps(tiny_base, tmp_path):
    out = train_prm(write_rows(tmp_path / "d.jsonl", n=16), tiny_base, tmp_path / "prm",
                    fast(max_steps=40, batch_size=4, learning_rate=3e-3), progress=False)
    assert out.losses[-1] < out.losses[0]
    verifier = build_verifier(VerifierConfig(name="trained_prm", model=str(out.output), device="cpu"))
    good, bad = verifier.score([Problem("a", QUESTION, "9")], [[GOOD, BAD]])[0]
    assert good > 0.5 > bad


def test_soft_labels_and_a_label_steps_dir_train(tiny_base, tmp_path):
    data = tmp_path / "labels"
    data.mkdir()
    write_rows(data / "steps.jsonl", soft=True)
    out = train_prm(data, tiny_base, tmp_path / "prm", fast(max_steps=2), progress=False)
    assert out.steps == 2 and "transformers" in out.trainer


def test_null_labels_leave_their_steps_out_of_the_loss(tiny_base, tmp_path):
    from ttscale.learn.train import hard_labels, load_stepwise

    row = {"prompt": QUESTION, "completions": [GOOD, BAD, "Answer: \\boxed{11}"], "labels": [None, None, False]}
    tok = load_base(tiny_base, "cpu")[1]
    labelled = [v for v in tokenize_row(row, tok, PRMLayout(), None)["labels"] if v != -100]
    assert labelled == [0.0]  # the two unjudged steps are context only
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(row) + "\n" + json.dumps({**row, "labels": [True, False, None]}) + "\n")
    assert not hard_labels(load_stepwise(data))  # TRL's trainer takes bools only: ours trains these
    out = train_prm(data, tiny_base, tmp_path / "prm", fast(max_steps=2), progress=False)
    assert out.steps == 2 and "transformers" in out.trainer and all(x == x for x in out.losses)  # no NaN
    unjudged = tmp_path / "none.jsonl"
    unjudged.write_text(json.dumps({**row, "labels": [None, None, None]}) + "\n")
    with pytest.raises(DataError, match="row 0: every label is null"):
        load_stepwise(unjudged)


def test_freeze_body_leaves_the_head_and_last_blocks_trainable(tiny_base):
    model, _ = load_base(tiny_base, "cpu")
    freeze_body(model, 0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"score.weight", "score.bias"} & {n for n, _ in model.named_parameters()}
    freeze_body(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".layers.1." in n for n in trainable) and not any(".layers.0." in n for n in trainable)


def test_bad_inputs_fail_with_clear_errors(tiny_base, tmp_path):
    with pytest.raises(ConfigError, match="max_steps=0"):
        TrainSettings(max_steps=0)
    with pytest.raises(DataError, match="training data not found"):
        train_prm(tmp_path / "nothing", tiny_base, tmp_path / "o")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "completions": ["a", "b"], "labels": [True]}) + "\n")
    with pytest.raises(DataError, match="2 steps but 1 labels"):
        train_prm(bad, tiny_base, tmp_path / "o")
    with pytest.raises(ModelLoadError, match="ttscale_prm.json"):
        build_verifier(VerifierConfig(name="trained_prm", model=tiny_base))
    with pytest.raises(ConfigError, match="verifier.model"):
        build_verifier(VerifierConfig(name="trained_prm"))


def test_cli_train_prm(tiny_base, tmp_path):
    from ttscale.cli import app

    data = write_rows(tmp_path / "d.jsonl")
    res = CliRunner().invoke(app, ["learn", "train-prm", str(data), "--base", tiny_base, "--output",
                                   str(tmp_path / "prm"), "--max-steps", "1", "--batch-size", "2",
                                   "--device", "cpu", "--step-separator", "\\n", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "for 1 steps" in res.output and "verifier.name=trained_prm" in res.output
    assert PRMLayout.load(tmp_path / "prm").step_separator == "\n"
    res = CliRunner().invoke(app, ["learn", "train-prm", str(data), "--base", tiny_base, "--output",
                                   str(tmp_path / "probe"), "--fit", "head", "--head-l2", "0.5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "head fit on frozen features (L-BFGS, l2=0.5)" in res.output
    assert PRMLayout.load(tmp_path / "probe").trainer == "head fit on frozen features (L-BFGS, l2=0.5)"


def test_fit_logistic_recovers_a_separating_direction_and_returns_raw_feature_weights():
    import torch

    from ttscale.learn.head_fit import fit_logistic

    torch.manual_seed(0)
    x = torch.randn(400, 6) * torch.tensor([1.0, 10.0, 0.1, 1.0, 1.0, 1.0]) + 3.0
    y = ((x[:, 1] - 3.0) / 10.0 + 0.3 * torch.randn(400) > 0).float()
    w, b, losses = fit_logistic(x, y, l2=1e-3, iterations=100)
    assert losses[-1] < losses[0] == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-6)
    predicted = (x @ w + b > 0).float()
    assert (predicted == y).float().mean() > 0.9  # on the raw features: the standardisation was folded back
    effect = (w * x.std(0)).abs()  # a weight's pull on the logit per standard deviation of its feature
    assert float(effect[1]) > 5 * float(effect[[0, 2, 3, 4, 5]].max())
    strong, *_ = fit_logistic(x, y, l2=100.0, iterations=100)
    assert float(strong.norm()) < float(w.norm())  # the penalty shrinks the head
    w0, b0, _ = fit_logistic(x, y, l2=1e-3, iterations=50, intercept=False)
    assert float(b0) == 0.0 and ((x @ w0 > 0).float() == y).float().mean() > 0.5


def test_fit_head_saves_a_prm_scored_like_its_fitted_logistic_regression(tiny_base, tmp_path):
    """--fit head: the body's weights unchanged, the head the fit, the PRM loadable by trained_prm, and its
    step scores the logistic regression's probabilities on the body's features."""
    import torch
    from transformers import AutoModelForTokenClassification

    from ttscale.learn.head_fit import classifier, features

    data = write_rows(tmp_path / "d.jsonl", n=16)
    out = train_prm(data, tiny_base, tmp_path / "prm", fast(fit="head", max_steps=50, head_l2=1e-3), progress=False)
    assert out.trainer.startswith("head fit") and out.losses[-1] < out.losses[0] and out.steps == len(out.losses)
    base = AutoModelForTokenClassification.from_pretrained(tiny_base)
    fitted = AutoModelForTokenClassification.from_pretrained(out.output)
    body = {k: v for k, v in fitted.state_dict().items() if not k.startswith("score.")}
    assert body and all(torch.equal(v, base.state_dict()[k]) for k, v in body.items())
    assert torch.equal(classifier(fitted).weight[0], torch.zeros(fitted.config.hidden_size))
    verifier = build_verifier(VerifierConfig(name="trained_prm", model=str(out.output), device="cpu"))
    good, bad = verifier.score([Problem("a", QUESTION, "9")], [[GOOD, BAD]])[0]
    assert good > 0.5 > bad  # the tiny body's features separate these two steps; the head found it
    row = tokenize_row({"prompt": QUESTION, "completions": [GOOD, BAD], "labels": [True, False]},
                       verifier.tokenizer, PRMLayout(), None)
    x, y = features(fitted.eval(), [row], verifier.tokenizer.pad_token_id, progress=False)
    head = classifier(fitted)
    p = torch.sigmoid(x @ head.weight[1] + head.bias[1])
    assert y.tolist() == [1.0, 0.0] and p.tolist() == pytest.approx([good, bad], abs=1e-4)


def test_fit_head_refuses_trainable_blocks():
    with pytest.raises(ConfigError, match="trainable_layers"):
        TrainSettings(fit="head", trainable_layers=2)
    with pytest.raises(ConfigError, match="fit='probe'"):
        TrainSettings(fit="probe")
    assert TrainSettings(fit="head", trainable_layers=0).fit == "head"


def test_features_are_the_same_batched_by_length_as_row_by_row(tiny_base, monkeypatch):
    """Rows of different lengths padded into one forward pass give each labelled token the features it
    has alone, in the rows' order (a causal body: the padding comes after every real token)."""
    import torch
    from transformers import AutoModelForTokenClassification

    from ttscale.learn import head_fit

    model = AutoModelForTokenClassification.from_pretrained(tiny_base).eval()
    tok = load_base(tiny_base, "cpu")[1]
    steps = [[GOOD, BAD, "Answer: \\boxed{9}"], [GOOD], [BAD, GOOD], [GOOD, GOOD, GOOD, BAD]]
    rows = [tokenize_row({"prompt": QUESTION, "completions": s, "labels": [i % 2 == 0] * len(s)}, tok, PRMLayout(), None)
            for i, s in enumerate(steps)]
    together = head_fit.features(model, rows, tok.pad_token_id, progress=False)
    monkeypatch.setattr(head_fit, "FEATURE_TOKENS", 1)  # every row alone
    alone = head_fit.features(model, rows, tok.pad_token_id, progress=False)
    assert together[0].shape == (10, model.config.hidden_size) and together[1].tolist() == alone[1].tolist()
    assert together[1].tolist() == [1.0] * 3 + [0.0] + [1.0] * 2 + [0.0] * 4
    assert torch.allclose(together[0], alone[0], atol=1e-5)
