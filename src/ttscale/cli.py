"""The `ttscale` command: thin wrappers that parse, load the config and call the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ttscale.cli_options import field_options
from ttscale.config import OutputConfig
from ttscale.errors import TTScaleError
from ttscale.server.config import ServeConfig, VerifierServeConfig

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
    shard: Annotated[Optional[str], typer.Option(help="run only shard i/K (into OUTPUT_DIR/shard-i-of-K)")] = None,
    ray: Annotated[Optional[int], typer.Option(help="run K shards as Ray tasks and merge them")] = None,
    ray_address: Annotated[Optional[str], typer.Option(help="existing Ray cluster (default: start a local one)")] = None,
    ray_gpus: Annotated[float, typer.Option(help="GPUs per Ray shard task")] = 0.0,
) -> None:
    """Run a recipe: search every problem, write completions.jsonl and metrics.json (resumable)."""
    from ttscale.eval.metrics import format_table
    from ttscale.recipe import load_config
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
        if ray:
            from ttscale.distributed import run_on_ray

            n_rows, metrics = run_on_ray(cfg, path.parent, ray, ray_address, ray_gpus)
            typer.echo(format_table(metrics))
            typer.echo(f"results in {cfg.output.dir} ({n_rows} problems merged from {ray} Ray shards)")
            return
        from ttscale.shards import parse_shard

        outcome = run_recipe(cfg, recipe_dir=path.parent, overwrite=overwrite, progress=not quiet,
                             shard=parse_shard(shard) if shard else None)
    except TTScaleError as e:
        _fail(e)
    n_failed, n_problems = outcome.metrics.get("n_failed", 0), outcome.metrics.get("n_problems", 0)
    if n_problems and n_failed == n_problems:
        # An accuracy over problems that all failed is not a result: say so and exit non-zero.
        typer.echo(f"error: all {n_problems} problems failed, so there is no accuracy to report; the first error "
                   f"is in {outcome.run_dir}/run.log and every problem's in its completions.jsonl row", err=True)
        raise typer.Exit(1)
    typer.echo(format_table(outcome.metrics))
    changed = f"; {outcome.n_changed} of the new replace rows whose problem changed" if outcome.n_changed else ""
    typer.echo(f"results in {outcome.run_dir} ({outcome.n_new} new, {outcome.n_skipped} resumed{changed})")
    if n_failed:
        typer.echo(f"warning: {n_failed} of {n_problems} problems failed (their rows hold the error); "
                   "their accuracy counts as wrong", err=True)


@app.command()
def probe(
    base_url: Annotated[str, typer.Argument(help="the server's URL, ending in /v1")],
    model: Annotated[Optional[str], typer.Option(help="model name the server expects (default: its first)")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="environment variable holding the API key")] = None,
) -> None:
    """Send a few tiny requests to an OpenAI-compatible server and print what it honours."""
    from ttscale.backends.openai_http import OpenAIGenerator, served_model
    from ttscale.config import ModelConfig

    try:
        cfg = ModelConfig(backend="openai", base_url=base_url, api_key_env=api_key_env, max_concurrency=4,
                          name_or_path=model or served_model(base_url, api_key_env) or "")
        generator = OpenAIGenerator(cfg, n_params=0, max_retries=1, timeout_s=120.0)
        lines = generator.capabilities.lines()
    except TTScaleError as e:
        _fail(e)
    typer.echo(f"{base_url} serving {cfg.name_or_path!r}:")
    typer.echo("\n".join(f"  {line}" for line in lines))


@app.command()
def recipes(fields: Annotated[bool, typer.Option(help="also list every config field with its default and help")] = False) -> None:
    """List bundled recipes, strategies, backends and verifiers."""
    from ttscale.backends.base import GENERATORS
    from ttscale.config import SECTIONS
    from ttscale.recipe import field_help
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
    timeout_total: Annotated[Optional[float], typer.Option(
        help="--pairs: seconds for the whole file; pairs left undecided are reported as errors")] = None,
) -> None:
    """Grade one pair (prints true/false) or a JSONL file of pairs."""
    from ttscale.grading.cli import grade_main

    raise typer.Exit(grade_main(gold, pred, pairs, sys.stdout, sys.stderr, timeout_total))


@app.command()
def merge(
    shard_dirs: Annotated[list[str], typer.Argument(help="shard directories written by `run --shard i/K`")],
    output: Annotated[str, typer.Option(help="merged run directory (new, empty, or a run of the same config)")],
    overwrite: Annotated[bool, typer.Option(help="discard a run of a different config in the output directory")] = False,
) -> None:
    """Combine shard directories into one run directory (configs must match; no gaps, no duplicates)."""
    from ttscale.eval.metrics import format_table
    from ttscale.shards import merge as merge_shards

    try:
        n_rows, metrics = merge_shards(shard_dirs, output, overwrite=overwrite)
    except TTScaleError as e:
        _fail(e)
    typer.echo(format_table(metrics))
    typer.echo(f"merged {n_rows} problems from {len(shard_dirs)} shards into {output}")


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


@app.command()
def view(
    run_dirs: Annotated[list[str], typer.Argument(help="run directories (written by `ttscale run`), shown side by side")],
    output: Annotated[str, typer.Option(help="the page to write")] = "report.html",
    serve_page: Annotated[bool, typer.Option("--serve", help="then serve the page at http://HOST:PORT until Ctrl-C")] = False,
    host: Annotated[str, typer.Option(help="--serve: address to bind; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="--serve: port to bind (0 = any free port)")] = 8008,
) -> None:
    """Write report.html for run folders (no `ttscale evaluate` needed): curves, problem table, every search tree."""
    from ttscale.eval.html_report import serve
    from ttscale.eval.html_report import view as write_view

    try:
        page = write_view(run_dirs, output)
        server = serve(page, host, port) if serve_page else None
    except TTScaleError as e:
        _fail(e)
    except OSError as e:
        _fail(TTScaleError(f"cannot serve on {host}:{port}: {e.strerror or e}"))
    typer.echo(f"page in {page}")
    if server is not None:
        typer.echo(f"serving http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
        with server:
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass


@app.command()
def evaluate(
    run_dirs: Annotated[list[str], typer.Argument(help="run directories (written by `ttscale run`)")],
    output: Annotated[Optional[str], typer.Option(help="output directory (default: RUN_DIR/eval for one run, else ./eval)")] = None,
    reference: Annotated[Optional[list[str]], typer.Option(help="reference line 'LABEL=PERCENT', e.g. 'Llama-3.1-8B 0-shot=51.9' (repeatable)")] = None,
    reduction: Annotated[Optional[list[str]], typer.Option(help="step-score reduction for naive/weighted best-of-N: last | min | prod | mean (repeatable; default: each run's verifier.reduction)")] = None,
    seeds: Annotated[int, typer.Option(help="subsample seeds per N for sampling runs")] = OutputConfig.subsample_seeds,
) -> None:
    """Curves, difficulty bins, compute-optimal selection, plots and report.md from run directories."""
    from ttscale.eval.evaluate import parse_reference
    from ttscale.eval.html_report import HTML_REPORT
    from ttscale.eval.report import REPORT, write_evaluation

    out = Path(output) if output else (Path(run_dirs[0]) / "eval" if len(run_dirs) == 1 else Path("eval"))
    try:
        refs = dict(parse_reference(r) for r in reference or [])
        write_evaluation(run_dirs, out, refs, reduction, seeds)
    except TTScaleError as e:
        _fail(e)
    typer.echo(f"report in {out / REPORT} and {out / HTML_REPORT}")


@app.command()
def calibrate(
    run_dirs: Annotated[list[str], typer.Argument(help="run directories scored by one verifier, on problems the "
                                                      "calibration will not pick for")],
) -> None:
    """Fit verifier.calibration on graded runs: the chance a solution is right given its verifier score."""
    from ttscale.eval.calibration import fit_runs, format_fit

    try:
        fit = fit_runs(run_dirs)
    except TTScaleError as e:
        _fail(e)
    typer.echo(format_fit(fit))


@app.command()
@field_options(ServeConfig)
def serve(
    recipe: Annotated[str, typer.Argument(help="recipe YAML path or bundled recipe name (model, verifier, search)")],
    host: Annotated[str, typer.Option(help="address to bind; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (0 = any free port, printed at start)")] = 8000,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override: section.key=value (repeatable)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    fields: dict[str, Any] | None = None,
) -> None:
    """Serve an OpenAI-compatible API whose replies are chosen by the recipe's search (pip install 'ttscale\\[server]').

    Every limit below is a field of ServeConfig (server/config.py), with its default and meaning there.
    """
    from ttscale.recipe import load_config
    from ttscale.server.app import serve as serve_app

    try:
        cfg = load_config(resolve_recipe(recipe), list(set_ or []))
        serve_app(cfg, ServeConfig(**(fields or {})), host, port, log_level)
    except TTScaleError as e:
        _fail(e)


@app.command("serve-verifier")
@field_options(VerifierServeConfig)
def serve_verifier(
    recipe: Annotated[str, typer.Argument(help="recipe YAML path or bundled recipe name (its verifier section)")],
    host: Annotated[str, typer.Option(help="address to bind; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (0 = any free port, printed at start)")] = 8001,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override: section.key=value (repeatable)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    fields: dict[str, Any] | None = None,
) -> None:
    """Serve the recipe's verifier over HTTP, for searches elsewhere (verifier.name=http there; pip install 'ttscale\\[server]').

    Every limit below is a field of VerifierServeConfig (server/config.py), with its default and meaning there.
    """
    from ttscale.recipe import load_config
    from ttscale.server.verifier_app import serve_verifier as serve_app

    try:
        cfg = load_config(resolve_recipe(recipe), list(set_ or []))
        serve_app(cfg, VerifierServeConfig(**(fields or {})), host, port, log_level)
    except TTScaleError as e:
        _fail(e)


from ttscale.learn.cli import learn_app  # noqa: E402 - typer sub-app; its commands import lazily

app.add_typer(learn_app, name="learn")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
