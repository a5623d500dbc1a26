"""`ttscale learn ...`: thin wrappers over export_sft, label_steps and train_prm (heavy imports inside)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ttscale.cli_options import field_options
from ttscale.errors import TTScaleError
from ttscale.learn.train import TrainSettings

learn_app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Turn search runs into training data (SFT traces, Monte Carlo step labels) and train a PRM.",
)


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


@learn_app.command("export-sft")
def export_sft_cmd(
    run_dir: Annotated[str, typer.Argument(help="run directory written by `ttscale run`")],
    output: Annotated[str | None, typer.Option(help="output directory (default: RUN_DIR/sft)")] = None,
    which: Annotated[str, typer.Option(help="selected: each problem's pick | correct: every candidate right by gold")] = "selected",
    dedup: Annotated[bool, typer.Option(help="drop solutions equal up to whitespace")] = True,
    max_per_problem: Annotated[int | None, typer.Option(help="at most K solutions per problem")] = None,
) -> None:
    """Write the run's solutions as a chat-format dataset (sft.jsonl + datasets dir) for TRL's SFTTrainer."""
    from ttscale.learn.sft import export_sft

    try:
        out = export_sft(run_dir, output, which, dedup, max_per_problem)  # type: ignore[arg-type]
    except TTScaleError as e:
        _fail(e)
    typer.echo(f"{out.n_rows} solutions from {out.n_problems}/{out.n_problems_seen} problems in {out.output}")


@learn_app.command("label-steps")
def label_steps_cmd(
    run_dir: Annotated[str, typer.Argument(help="run directory written by `ttscale run`")],
    output: Annotated[str, typer.Option(help="output directory (resumable)")],
    rollouts: Annotated[int, typer.Option(help="k: completions rolled out from each step prefix")] = 8,
    mode: Annotated[str, typer.Option(help="hard: any rollout reaches the gold answer | soft: the fraction that do")] = "hard",
    max_per_problem: Annotated[int | None, typer.Option(help="label at most K distinct candidates per problem")] = None,
    seed: Annotated[int, typer.Option(help="offset of the rollout seeds")] = 0,
    max_new_tokens: Annotated[int | None, typer.Option(help="token cap of one rollout (default: the run's)")] = None,
    own_continuation: Annotated[bool, typer.Option(
        help="each labelled candidate counts as one more rollout of the prefixes it continues")] = True,
    temperature: Annotated[float | None, typer.Option(
        help="the rollouts' sampling temperature (default: the run's); lower is a stronger completer")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Math-Shepherd Monte Carlo step labels in TRL's stepwise-supervision format, using the run's policy."""
    from ttscale.learn.labels import label_steps

    try:
        out = label_steps(run_dir, output, rollouts, mode, max_per_problem, seed, max_new_tokens,  # type: ignore[arg-type]
                          progress=not quiet, own_continuation=own_continuation, temperature=temperature)
    except TTScaleError as e:
        _fail(e)
    failed = f", {out.n_failed} failed (rerun to retry)" if out.n_failed else ""
    typer.echo(f"{out.n_rows} labelled solutions in {out.output} ({out.n_new} new problems, {out.n_skipped} resumed{failed})")


@learn_app.command("train-prm")
@field_options(TrainSettings)
def train_prm_cmd(
    data: Annotated[str, typer.Argument(help="label-steps output dir, a saved datasets dir, or a .jsonl")],
    base: Annotated[str, typer.Option(help="base model: hub id, local dir, or embedded:smollm2")],
    output: Annotated[str, typer.Option(help="where the PRM is saved (then verifier.name=trained_prm, verifier.model=OUTPUT)")],
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
    fields: dict[str, Any] | None = None,
) -> None:
    """Train a PRM (token classification at step separators) that `verifier.name: trained_prm` loads.

    The training options are TrainSettings' fields (learn/train.py), with their defaults and meaning there.
    """
    from ttscale.config import unescape
    from ttscale.learn.train import train_prm

    fields = dict(fields or {})
    if "step_separator" in fields:
        fields["step_separator"] = unescape(fields["step_separator"])
    try:
        out = train_prm(data, base, output, TrainSettings(**fields), progress=not quiet)
    except TTScaleError as e:
        _fail(e)
    last = f", final loss {out.losses[-1]:.4f}" if out.losses else ""
    typer.echo(f"trained on {out.n_rows} rows for {out.steps} steps with {out.trainer}{last}; saved to {out.output}")
    typer.echo(f"use it with: --set verifier.name=trained_prm --set verifier.model={out.output}")


@learn_app.command("perturb-steps")
def perturb_steps_cmd(
    run_dirs: Annotated[list[str], typer.Argument(help="run directories written by `ttscale run`")],
    output: Annotated[str, typer.Option(help="a new .jsonl file for the rows (train-prm reads it)")],
    copies: Annotated[int, typer.Option(help="perturbed rows per step of a right solution")] = 1,
    seed: Annotated[int, typer.Option(help="seed of the number changes")] = 0,
) -> None:
    """Step labels without rollouts: each right solution's steps good, each with one number changed bad."""
    from ttscale.learn.perturb import perturb_steps

    try:
        n = perturb_steps(run_dirs, output, copies, seed)
    except TTScaleError as e:
        _fail(e)
    typer.echo(f"{n} rows in {output}; train with: ttscale learn train-prm {output} --base ... --output ...")
