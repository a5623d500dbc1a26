"""Options generated from settings dataclasses : no command retypes a field's default or help."""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.cli_options import field_options
from ttscale.learn.train import TrainSettings
from ttscale.server.config import ServeConfig


@dataclass
class Knobs:
    steps: int = field(default=3, metadata={"help": "how many steps"})
    rate: float | None = field(default=None, metadata={"help": "a rate"})
    loud: bool = field(default=False, metadata={"help": "say more"})


def test_each_field_is_an_option_with_its_default_and_help():
    seen = []
    tiny = typer.Typer()

    @tiny.command()
    @field_options(Knobs)
    def go(name: str, fields: dict[str, Any] | None = None) -> None:
        seen.append((name, Knobs(**fields)))

    runner = CliRunner()
    assert runner.invoke(tiny, ["x"]).exit_code == 0
    assert runner.invoke(tiny, ["y", "--steps", "7", "--rate", "0.5", "--loud"]).exit_code == 0
    assert seen == [("x", Knobs()), ("y", Knobs(steps=7, rate=0.5, loud=True))]
    help_text = runner.invoke(tiny, ["--help"]).output
    assert "how many steps" in help_text and "a rate" in help_text and "--loud" in help_text


@pytest.mark.parametrize("command, cls", [(["serve"], ServeConfig), (["learn", "train-prm"], TrainSettings)])
def test_serve_and_train_prm_offer_every_field_of_their_settings(command, cls):
    out = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "300"}).output
    for f in dataclasses.fields(cls):
        assert f"--{f.name.replace('_', '-')}" in out, f.name
