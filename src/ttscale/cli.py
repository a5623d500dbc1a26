"""The `ttscale` command: thin wrappers that parse, load the config and call the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ttscale.errors import TTScaleError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Test-time compute scaling with verifier-guided search.")

RECIPES_DIR = Path(__file__).parent / "recipes"


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


def resolve_recipe(name: str) -> Path:
    """A recipe path, or the name of a bundled recipe (with or without .yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = RECIPES_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if bundled.is_file():
        return bundled
    from ttscale.errors import ConfigError, closest

    names = [p.stem for p in RECIPES_DIR.glob("*.yaml")]
    raise ConfigError(f"recipe not found: {name}{closest(path.stem, names)}; bundled recipes: {', '.join(sorted(names))}")


@app.command()
def run(
    recipe: Annotated[str, typer.Argument(help="recipe YAML path or bundled recipe name (see `ttscale recipes`)")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override: section.key=value (repeatable)")] = None,
    output_dir: Annotated[Optional[str], typer.Option(help="run directory (default: output.dir)")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="shortcut for --set search.strategy=...")] = None,
    policy: Annotated[Optional[str], typer.Option(help="compute_optimal: policy.json from `ttscale evaluate`")] = None,
    overwrite: Annotated[bool, typer.Option(help="discard a different run in the output directory")] = False,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Run a recipe: search every problem, write completions.jsonl and metrics.json (resumable)."""
    from ttscale.config import load_config
    from ttscale.eval.metrics import format_table
    from ttscale.runner import run as run_recipe

    overrides = list(set_ or [])
    if strategy:
        overrides.append(f"search.strategy={strategy}")
    if policy:
        overrides.append(f"search.policy={policy}")
    if output_dir:
        overrides.append(f"output.dir={output_dir}")
    try:
        path = resolve_recipe(recipe)
        cfg = load_config(path, overrides)
        outcome = run_recipe(cfg, recipe_dir=path.parent, overwrite=overwrite, progress=not quiet)
    except TTScaleError as e:
        _fail(e)
    typer.echo(format_table(outcome.metrics))
    typer.echo(f"results in {outcome.run_dir} ({outcome.n_new} new, {outcome.n_skipped} resumed)")


@app.command()
def recipes(fields: Annotated[bool, typer.Option(help="also list every config field with its default and help")] = False) -> None:
    """List bundled recipes, strategies, backends and verifiers."""
    from ttscale.backends.base import GENERATORS
    from ttscale.config import SECTIONS, field_help
    from ttscale.search.base import STRATEGIES
    from ttscale.verifiers.base import VERIFIERS

    typer.echo("recipes:")
    for p in sorted(RECIPES_DIR.glob("*.yaml")):
        first = p.read_text(encoding="utf-8").splitlines()[0].lstrip("# ") if p.stat().st_size else ""
        typer.echo(f"  {p.stem:<28} {first}")
    typer.echo(f"strategies: {', '.join(STRATEGIES.names())}")
    typer.echo(f"backends:   {', '.join(GENERATORS.names())}")
    typer.echo(f"verifiers:  none, {', '.join(VERIFIERS.names())}")
    if fields:
        for name, cls in SECTIONS.items():
            typer.echo(f"\n[{name}]")
            for field, default, help_ in field_help(cls):
                typer.echo(f"  {field:<24} {default!r:<22} {help_}")


@app.command()
def grade(
    gold: Annotated[Optional[str], typer.Option(help="gold answer")] = None,
    pred: Annotated[Optional[str], typer.Option(help="predicted answer")] = None,
    pairs: Annotated[Optional[str], typer.Option(help="JSONL file of {gold, pred} objects")] = None,
) -> None:
    """Grade one pair (prints true/false) or a JSONL file of pairs."""
    from ttscale.grading.cli import grade_main

    raise typer.Exit(grade_main(gold, pred, pairs, sys.stdout, sys.stderr))


@app.command()
def tree(
    run_dir: Annotated[str, typer.Argument(help="run directory written with output.save_trees=true")],
    problem: Annotated[str, typer.Option(help="problem id")],
) -> None:
    """Print one problem's search tree as indented text."""
    from ttscale.data.results import read_trees
    from ttscale.eval.trees import format_tree

    try:
        trees = read_trees(run_dir)
    except TTScaleError as e:
        _fail(e)
    if problem not in trees:
        _fail(TTScaleError(f"problem {problem!r} not in {run_dir}/trees.jsonl; ids: {', '.join(list(trees)[:10])}"))
    typer.echo(format_tree(trees[problem]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
