"""Bad input at the edge: one clear message per problem, exit 2, nothing written to the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack.cli import main

from .conftest import ROOT, write_pipeline
from .imagefolders import make_image_folder


def _run(args):
    return CliRunner().invoke(main, args, prog_name="tunetrack")


BAD_SPACE = """\
family: cnn
blocks:
  count: {int: [3, 1]}
  filters: {choice: []}
  pooling: {choice: [max, average]}
optimiser: adam
dropout: {float: [0, 0.5], step: 0.9}
"""


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path):
    space = tmp_path / "bad.yaml"
    space.write_text(BAD_SPACE)
    result = _run(["validate", str(space)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines == [
        f"{space}:3: blocks.count: min must be <= max, but got [3, 1]",
        f"{space}:4: blocks.filters: a choice needs at least one value, but got []",
        f"{space}:5: blocks.pooling: unknown pooling 'average' (did you mean 'avg'?); "
        "allowed: 'max', 'avg', 'none'",
        f"{space}:6: optimiser: unknown key 'optimiser' (did you mean 'optimizer'?); allowed: "
        "'family', 'description', 'constraints', 'input_shape', 'classes', 'batch_size', "
        "'learning_rate', 'optimizer', 'momentum', 'l1', 'l2', 'activation', "
        "'leaky_relu_slope', 'dropout', 'batch_norm', 'bias', 'width', 'head', "
        "'augment_translate', 'augment_rotate', 'augment_zoom', 'augment_flip', 'stem', "
        "'blocks', 'dense'",
        f"{space}:7: dropout: step 0.9 is larger than the range [0.0, 0.5]",
    ]
    assert "Traceback" not in result.output


def test_validate_pipeline_problems(tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("space: nope.yaml\ntuner: {kind: randm, max_trials: 0}\ntrainin: {}\n")
    result = _run(["validate", str(pipeline)])
    assert result.exit_code == 2
    assert f"{pipeline}:3: trainin: unknown key 'trainin'" in result.output
    assert "(did you mean 'training'?)" in result.output
    assert f"{pipeline}:1: space: the space file '{tmp_path / 'nope.yaml'}' does not exist" \
        in result.output
    assert (f"{pipeline}:2: tuner.kind: must be one of 'random', 'grid', 'bayesian', "
            "'hyperband', 'tpe', got 'randm' (did you mean 'random'?)") in result.output
    assert f"{pipeline}:2: tuner.max_trials: must be at least 1, got 0" in result.output


def test_validate_yaml_syntax_and_duplicates(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("family: cnn\nblocks: [1\nlearning_rate: 0.1\n")
    dup = tmp_path / "dup.yaml"
    dup.write_text("family: mlp\nl2: 0.1\nl2: 0.2\n")
    result = _run(["validate", str(broken), str(dup)])
    assert result.exit_code == 2
    assert f"{broken}:3: YAML syntax error" in result.output
    assert f"{dup}:3: l2: duplicate key 'l2' (first given on line 2)" in result.output


def test_validate_shipped_files_are_ok():
    files = sorted(str(p) for p in (ROOT / "pipelines").glob("*.yaml"))
    files += sorted(str(p) for p in (ROOT / "search_spaces").glob("*.yaml"))
    result = _run(["validate", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok\n") == len(files)


def test_grid_tuner_needs_finite_space(tmp_path: Path):
    pipeline = write_pipeline(tmp_path, tuner="grid")
    result = _run(["validate", str(pipeline)])
    assert result.exit_code == 2
    assert "the grid tuner needs finite choices: learning_rate" in result.output


def test_plan_prints_the_course_example(tmp_path: Path):
    space = tmp_path / "course.yaml"
    space.write_text("family: cnn\nblocks:\n  count: 3\n  filters: {choice: [8, 16, 32]}\n"
                     "  kernel_size: {choice: [5, 1]}\n  padding: same\n  pooling: none\n"
                     "dense: 0\n")
    result = _run(["plan", str(space), "--input-shape", "32,32,3", "--set", "blocks.1.filters=8",
                   "--set", "blocks.2.filters=16", "--set", "blocks.3.filters=32",
                   "--set", "blocks.3.kernel_size=1"])
    assert result.exit_code == 0, result.output
    assert [line.split()[-1] for line in result.output.splitlines()
            if line.startswith("blocks.") and " conv " in line] == ["608", "3,216", "544"]
    assert "32×32×8" in result.output


def test_plan_reports_an_impossible_candidate(tmp_path: Path):
    space = tmp_path / "seven.yaml"
    space.write_text("family: cnn\nblocks:\n  count: 1\n  kernel_size: 3\n  padding: valid\n"
                     "  stride: 3\n  pooling: none\ndense: 0\n")
    result = _run(["plan", str(space), "--input-shape", "7,7,1"])
    assert result.exit_code == 1
    assert "REJECTED (impossible): blocks.1 conv: (7 + 2·0 − 3)/3 + 1 = 2.33" in result.output


def test_plan_imports_no_tensorflow(tmp_path: Path):
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from tunetrack.cli import main; "
            f"r = CliRunner().invoke(main, ['plan', r'{ROOT / 'search_spaces' / 'cnn.yaml'}', "
            "'--sample', '5', '--input-shape', '32,32,3']); "
            "print(r.exit_code in (0, 1), [m for m in ('tensorflow', 'keras', 'keras_tuner') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"


@pytest.mark.slow
def test_bad_space_writes_nothing(store, workdir: Path):
    pipeline = write_pipeline(workdir, space=BAD_SPACE)
    result = _run(["search", str(pipeline)])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {workdir / 'space.yaml'}:3: blocks.count:")
    assert store.search_experiments() == [] or all(
        not store.search_runs([e.experiment_id]) for e in store.search_experiments())


@pytest.mark.slow
def test_bad_data_writes_nothing(store, workdir: Path):
    folder = make_image_folder(workdir / "imgs", classes={"a": 5, "b": 5}, corrupt="text_as_png")
    pipeline = write_pipeline(workdir)
    result = _run(["search", str(pipeline), "--data", str(folder)])
    assert result.exit_code == 2
    assert "cannot decode image" in result.output and ".png" in result.output
    missing = _run(["search", str(pipeline), "--data", str(workdir / "nowhere")])
    assert missing.exit_code == 2
    assert str(workdir / "nowhere") in missing.output
    assert all(not store.search_runs([e.experiment_id]) for e in store.search_experiments())
