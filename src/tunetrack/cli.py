"""The ``tunetrack`` command: a thin click layer over the library.

Start-up must stay fast: TensorFlow, keras-tuner and MLflow are imported inside the commands
that need them, never here.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tunetrack.errors import TunetrackError, capped

TUNER_CHOICES = ("random", "grid", "bayesian", "hyperband", "tpe")
PRUNER_CHOICES = ("none", "median", "asha")


def _failure(error: TunetrackError) -> click.ClickException:
    """A :class:`TunetrackError` as click shows it: ``Error: message`` and the error's exit code
    (click reads ``exit_code`` from the class)."""
    kind = type("Failure", (click.ClickException,), {"exit_code": error.exit_code})
    failure: click.ClickException = kind(capped(str(error)))
    return failure


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TunetrackError as error:
            raise _failure(error) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tunetrack")
def main() -> None:
    """Keras hyperparameter search over image-classification model families, every trial
    tracked in MLflow.

    \b
    Typical session:
      tunetrack validate pipelines/digits.yaml
      tunetrack plan search_spaces/digits_cnn.yaml --sample 3
      tunetrack search pipelines/digits.yaml
      tunetrack ui
    """


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--space", type=click.Path(dir_okay=False), metavar="FILE", help="Search-space file (overrides the pipeline's).")
@click.option("--tuner", type=click.Choice(TUNER_CHOICES), help="Search strategy (keras-tuner oracle; tpe: Optuna's TPE sampler).")
@click.option("--max-trials", type=click.IntRange(min=1), help="Models to train (rejected candidates do not count).")
@click.option("--repeats", type=click.IntRange(min=1), help="Train each candidate N times with other seeds; rank by the mean (see compare --significance).")
@click.option("--pruning", type=click.Choice(PRUNER_CHOICES), help="Stop unpromising trials early (overrides tuner.pruning.kind).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per trial (Hyperband: the most per trial).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the tuner and of weight initialisation.")
@click.option("--experiment", help="MLflow experiment name.")
@click.option("--data", "data", help="Image folder (one subfolder per class), 'digits' or 'keras:NAME'.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), help="Wall-clock budget; the running trial finishes.")
@click.option("--set", "pins", multiple=True, metavar="KEY=VALUE", help="Fix a hyperparameter for this search (repeatable), e.g. --set width=0.25.")
@click.option("--resume", "mode", flag_value="resume", help="Continue the interrupted search of this pipeline; refuse if its files or flags changed.")
@click.option("--new", "mode", flag_value="new", help="Start a new search even if an interrupted one could be resumed.")
@click.option("--workers", type=click.IntRange(min=0), help="Train on N local worker processes around a chief oracle (0: only remote workers).")
@click.option("--oracle-address", metavar="HOST:PORT", default="127.0.0.1:0", show_default=True, help="Where the chief serves the oracle (with --workers); 0.0.0.0:PORT lets other hosts join.")
@click.option("--gpus-per-worker", type=click.IntRange(min=1), help="With --workers: pin each local worker to its own N GPUs (CUDA_VISIBLE_DEVICES); default one each when there are several.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final summary.")
def search(pipeline: str, quiet: bool, mode: str | None, workers: int | None,
           oracle_address: str, gpus_per_worker: int | None, pins: tuple[str, ...], **flags: Any) -> None:
    """Run the hyperparameter search described by PIPELINE and track it in MLflow.

    \b
    A plain re-run of an interrupted search resumes it (completed trials are kept, the
    interrupted one runs again); a re-run of a finished search starts a new one.
    With KERASTUNER_ORACLE_IP/_PORT and KERASTUNER_TUNER_ID set (not 'chief') this process
    is a worker of a chief started elsewhere with --workers.
    """
    from tunetrack.search.progress import ConsoleReporter, QuietReporter
    from tunetrack.search.resume import resume_command
    from tunetrack.search.signals import InterruptHandling, interrupt_reason
    from tunetrack.space.pipeline import load_pipeline
    from tunetrack.space.planning import parse_assignments

    # Ctrl-C, SIGTERM or SIGHUP stop the search the same way, even while it is still starting
    # (and with SIGINT ignored, as in a background job).
    with InterruptHandling():
        pinned = tuple(parse_assignments(pins).items())
        loaded = load_pipeline(pipeline).override(**flags, pins=pinned)
        from tunetrack.search.workers import is_worker, run_worker

        if is_worker():
            sys.exit(run_worker(loaded, notify=lambda m: click.echo(m, err=True)))
        reporter = QuietReporter(click.echo) if quiet else ConsoleReporter()
        notify = lambda message: click.echo(message, err=True)  # noqa: E731
        try:
            if workers is not None:
                from tunetrack.search.workers import run_parallel

                result = run_parallel(loaded, workers=workers, reporter=reporter,
                                      mode=mode or "auto", notify=notify,
                                      oracle_address=oracle_address,
                                      gpus_per_worker=gpus_per_worker)
            else:
                from tunetrack.search.session import run_search

                result = run_search(loaded, reporter=reporter, mode=mode or "auto",
                                    notify=notify)
        except KeyboardInterrupt:
            again = resume_command(pipeline, {**flags, "set": pins, "workers": workers})
            click.echo(f"search {interrupt_reason()}: the running trial and the search run are "
                       f"marked KILLED in MLflow; resume it with:\n  {again}", err=True)
            sys.exit(130)
    from tunetrack.tracking.store import tracking_uri
    from tunetrack.tracking.uilinks import run_url, runs_url, ui_base

    base = ui_base(tracking_uri())
    click.echo(f"in the MLflow UI ('tunetrack ui'): "
               f"{runs_url(base, result.experiment_id, result.objective, result.direction)}\n"
               f"  this search: {run_url(base, result.experiment_id, result.parent_run_id)}")
    if result.best is None:
        raise click.ClickException("no trial was trained: see the rejected/failed reasons above")


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--chief", required=True, metavar="HOST:PORT", help="The chief's oracle (its search --oracle-address).")
@click.option("--search", "search_id", metavar="RUN_ID", help="The chief's search run (it prints it); default: the running search of this pipeline.")
@click.option("--id", "tuner_id", metavar="NAME", help="This worker's unique name (default HOST-PID).")
@click.option("--space", type=click.Path(dir_okay=False), metavar="FILE")
@click.option("--tuner", type=click.Choice(TUNER_CHOICES))
@click.option("--max-trials", type=click.IntRange(min=1))
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--seed", type=click.IntRange(min=0))
@click.option("--experiment")
@click.option("--data", "data")
@click.option("--set", "pins", multiple=True, metavar="KEY=VALUE")
def worker(pipeline: str, chief: str, search_id: str | None, tuner_id: str | None,
           pins: tuple[str, ...], **flags: Any) -> None:
    """Train trials for a chief on another host (`tunetrack search ... --workers N
    --oracle-address 0.0.0.0:PORT`) until it has none; the chief prints this command.

    Set MLFLOW_TRACKING_URI to the chief's tracking server. Exits 3 when the chief stops
    answering (TUNETRACK_HEARTBEAT_TIMEOUT seconds, default 60).
    """
    from tunetrack.search.workers import join
    from tunetrack.space.pipeline import load_pipeline
    from tunetrack.space.planning import parse_assignments

    loaded = load_pipeline(pipeline).override(**flags, pins=tuple(parse_assignments(pins).items()))
    sys.exit(join(loaded, chief=chief, tuner_id=tuner_id, parent=search_id))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 for other hosts.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--backend-store-uri", metavar="URI", help="Run store: default SQLite under ./mlruns; postgresql://... for teams.")
@click.option("--artifacts-destination", metavar="DIR", help="Where served artifacts are kept (default ./mlruns/artifacts).")
def server(host: str, port: int, backend_store_uri: str | None,
           artifacts_destination: str | None) -> None:
    """Start an MLflow tracking server (runs, registry, artifact serving) for workers and teams.

    Point searches at it with MLFLOW_TRACKING_URI=http://HOST:PORT; with several local workers
    this also avoids SQLite's one-writer-at-a-time limit.
    """
    import os

    from tunetrack.tracking.server import server_command

    command = server_command(host=host, port=port, backend_store_uri=backend_store_uri,
                             artifacts_destination=artifacts_destination)
    click.echo(f"MLflow tracking server on http://{host}:{port} (store {command[command.index('--backend-store-uri') + 1]}); "
               f"use MLFLOW_TRACKING_URI=http://{host}:{port}  (Ctrl-C stops it)")
    os.execvp(command[0], command)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check pipeline and search-space FILES; print every problem as FILE:LINE: message.

    A pipeline's data is inspected as the search would load it (no image is decoded) and a
    sample of its space's candidates is planned on that data: what validate calls ok, search
    does not refuse before training.
    """
    from functools import partial

    from tunetrack.data import inspect_source
    from tunetrack.space.validate import validate_files

    notes: list[str] = []  # what could not be checked here (an image folder not present)
    problems = validate_files(files, inspect_data=partial(inspect_source, absent_ok=True),
                              notes=notes)
    for line in notes + problems:
        click.echo(line, err=True)
    if problems:
        sys.exit(2)
    for file in files:
        click.echo(f"{file}: ok")


@main.command()
@click.argument("space_file", metavar="SPACE", type=click.Path(dir_okay=False))
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Fix one hyperparameter of the candidate (repeatable).")
@click.option("--sample", type=click.IntRange(min=1), help="Plan N sampled candidates instead of the defaults.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of --sample.")
@click.option("--input-shape", metavar="H,W,C",
              help="Image shape to plan for [default: the space's input_shape, else 8,8,1].")
@click.option("--classes", type=click.IntRange(min=2),
              help="Number of classes [default: the space's classes, else 10].")
@click.option("--json", "as_json", is_flag=True, help="Print the plan(s) as JSON.")
def plan(space_file: str, assignments: tuple[str, ...], sample: int | None, seed: int,
         input_shape: str | None, classes: int | None, as_json: bool) -> None:
    """Show a candidate's layers, output shapes and parameter counts without training it."""
    from tunetrack.space.planning import plan_command

    text, ok = plan_command(space_file, assignments, sample=sample, seed=seed,
                            input_shape=input_shape, classes=classes, as_json=as_json)
    click.echo(text)
    if not ok:
        sys.exit(1)


@main.command()
@click.option("--experiment", help="MLflow experiment (default: the most recent search anywhere).")
@click.option("--search", "search_id", metavar="RUN_ID", help="The search (parent) run; default: the experiment's latest.")
@click.option("--top", type=click.IntRange(min=1), help="Show only the K best trials.")
@click.option("--sort", metavar="COLUMN", help="Sort by COLUMN ('-COLUMN' descending); default: the objective.")
@click.option("--where", metavar="FILTER", help="MLflow filter, e.g. \"params.optimizer = 'adam'\".")
@click.option("--format", "fmt", type=click.Choice(("table", "csv", "json", "markdown")), default="table", show_default=True)
@click.option("--significance", is_flag=True, help="Test #1 against #2 on their seed repeats (Welch's t-test); the verdict goes to stderr with csv/json.")
def compare(experiment: str | None, search_id: str | None, top: int | None, sort: str | None,
            where: str | None, fmt: str, significance: bool) -> None:
    """Compare the trials of a search: hyperparameters that vary, objective, size, time.

    A search with --repeats ranks candidates by their mean, with ± (standard deviation) and
    the 95% confidence interval of the mean.
    """
    from tunetrack.tracking.compare import compare as compare_trials

    click.echo(compare_trials(experiment=experiment, search=search_id, top=top, sort=sort,
                              where=where, fmt=fmt).rstrip("\n"))
    if significance:
        from tunetrack.tracking.compare import significance_verdict as verdict

        click.echo(f"\n{verdict(experiment=experiment, search=search_id, where=where)}",
                   err=fmt in ("csv", "json"))


@main.command()
@click.option("--experiment", required=True, help="MLflow experiment of the search.")
@click.option("--model-name", required=True, help="Registered model name in the MLflow registry.")
@click.option("--search", "search_id", metavar="RUN_ID", help="The search (parent) run; default: the experiment's latest.")
@click.option("--metric", default="val_accuracy", show_default=True, help="Validation metric that picks the best trial.")
@click.option("--min-test-accuracy", type=click.FloatRange(0, 1), help="Refuse a model below this test accuracy.")
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True, help="Evaluate the K best trials on the test split; the best on test is registered.")
@click.option("--ensemble", type=click.IntRange(min=1), default=1, show_default=True, help="Register the K best trials (by --metric) as one model averaging their probabilities.")
@click.option("--dry-run", is_flag=True, help="Evaluate and report; register nothing.")
@click.option("--require-significant", is_flag=True, help="Refuse unless the best trial's lead over the second exceeds seed noise (Welch's t-test on --repeats).")
def promote(experiment: str, model_name: str, search_id: str | None, metric: str,
            min_test_accuracy: float | None, top: int, ensemble: int, dry_run: bool,
            require_significant: bool) -> None:
    """Evaluate the best trial on the sealed test split and make it the registry's champion.

    The alias 'champion' moves only if the model passes --min-test-accuracy and does at least
    as well as the current champion; otherwise it becomes 'challenger' and the exit status is 1.
    """
    from tunetrack.errors import PromotionRefused
    from tunetrack.registry.promote import promote as promote_best

    try:
        result = promote_best(experiment, model_name, search=search_id, metric=metric,
                              min_test_accuracy=min_test_accuracy, top=top, ensemble=ensemble,
                              dry_run=dry_run, require_significant=require_significant)
    except PromotionRefused as refused:
        outcome = getattr(refused, "result", None)
        for line in outcome.lines()[:-1] if outcome else []:  # the last line is the error
            click.echo(line)
        raise
    for line in result.lines():
        click.echo(line)


@main.command()
@click.argument("model_uri")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(("table", "csv", "json")), default="table", show_default=True)
def predict(model_uri: str, paths: tuple[str, ...], fmt: str) -> None:
    """Classify image files and folders with MODEL_URI (models:/NAME@champion, runs:/ID/model)."""
    from tunetrack.registry.serving import predict as predict_paths

    text, errors = predict_paths(model_uri, paths, fmt)
    click.echo(text.rstrip("\n"))
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)


@main.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=16.0, show_default=True, help="Largest request body; a larger one gets 413 before it is read.")
@click.option("--allow-paths", type=click.Path(exists=True, file_okay=False), metavar="DIR", help="Let clients name image files inside DIR (off: only base64 image bytes).")
def serve(model_uri: str, host: str, port: int, workers: int, max_body_mb: float,
          allow_paths: str | None) -> None:
    """Serve MODEL_URI with MLflow's scoring app: POST base64 images to /invocations.

    Bodies over --max-body-mb get 413, a missing or unknown Content-Type 415, and every error
    a one-line JSON reason. SIGTERM, SIGINT or SIGHUP stops the server and all its workers.
    """
    from tunetrack.registry.serving import serve as serve_model

    click.echo(f"serving {model_uri} on http://{host}:{port}/invocations  (Ctrl-C stops it)")
    sys.exit(serve_model(model_uri, host=host, port=port, workers=workers,
                         max_body=int(max_body_mb * (1 << 20)), allow_paths=allow_paths))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="Open the runs view in a browser once it answers.")
def ui(host: str, port: int, open_browser: bool) -> None:
    """Start the MLflow UI on tunetrack's store; print its runs view once it answers."""
    import signal
    import subprocess

    from tunetrack.tracking.store import tracking_uri
    from tunetrack.tracking.uilinks import latest_search, run_url, runs_url, wait_until_up

    uri = tracking_uri()
    found = latest_search()
    click.echo(f"starting the MLflow UI on {uri} ...", err=True)
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                                "--host", host, "--port", str(port)])
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    try:
        if not wait_until_up(base, lambda: process.poll() is None):
            process.terminate()
            raise click.ClickException(f"the MLflow UI did not answer on {base} (exit status "
                                       f"{process.wait()})")
        url = (runs_url(base, found[0], found[2], found[3]) if found
               else f"{base}/#/experiments?workflowType=machine_learning")
        click.echo(f"MLflow UI on {uri}: {url}")
        if found:
            click.echo(f"  latest search: {run_url(base, found[0], found[1])}")
        click.echo("  (Ctrl-C stops it)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        sys.exit(process.wait())
    except KeyboardInterrupt:
        process.terminate()
        sys.exit(process.wait())


if __name__ == "__main__":  # pragma: no cover
    main()
