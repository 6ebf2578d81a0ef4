"""The command line: exact help text, flag errors, fast start-up."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from tunetrack.cli import main

from .conftest import ROOT


def _run(args):
    return CliRunner().invoke(main, args, prog_name="tunetrack")


def test_help_lists_commands():
    result = _run(["--help"])
    assert result.exit_code == 0
    assert result.output.startswith("Usage: tunetrack [OPTIONS] COMMAND [ARGS]...\n")
    for command in ("search", "validate", "plan", "ui"):
        assert f"\n  {command} " in result.output


def test_search_help_shows_every_flag():
    result = _run(["search", "--help"])
    assert result.exit_code == 0
    assert "Usage: tunetrack search [OPTIONS] PIPELINE" in result.output
    for flag in ("--space FILE", "--tuner [random|grid|bayesian|hyperband|tpe]", "--max-trials",
                 "--epochs", "--seed", "--experiment", "--data", "--max-minutes", "-q, --quiet"):
        assert flag in result.output


def test_bad_flag_exits_2():
    result = _run(["search", "pipelines/digits.yaml", "--bogus"])
    assert result.exit_code == 2
    assert result.output == ("Usage: tunetrack search [OPTIONS] PIPELINE\n"
                             "Try 'tunetrack search --help' for help.\n\n"
                             "Error: No such option '--bogus'.\n")


def test_bad_tuner_names_the_choices():
    result = _run(["search", "pipelines/digits.yaml", "--tuner", "genetic"])
    assert result.exit_code == 2
    assert ("Invalid value for '--tuner': 'genetic' is not one of 'random', 'grid', "
            "'bayesian', 'hyperband', 'tpe'.") in result.output


def test_missing_pipeline_is_a_clean_error(tmp_path):
    result = _run(["search", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert result.output == f"Error: {tmp_path / 'nope.yaml'}: file not found\n"


def test_cli_imports_no_heavy_packages():
    code = ("import sys, tunetrack.cli; heavy = [m for m in ('tensorflow', 'keras', "
            "'keras_tuner', 'mlflow', 'pandas') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "[]"
