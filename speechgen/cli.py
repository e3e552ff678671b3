"""The ``speechgen`` command: parse, call one library function, print.

TensorFlow is imported only inside the commands, so ``--help`` answers at once. A
:class:`speechgen.errors.SpeechgenError` becomes one line on stderr and exit status 1
(2 for usage errors); ``--debug`` shows the traceback instead.
"""

import json
import os
import sys
import time
from pathlib import Path

import click

from .errors import SpeechgenError, UsageError

DEFAULT_RECIPE = "speech"  # what a bare `speechgen train DATA` trains


class _Group(click.Group):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Like click's, but a usage error is one line (``error: ...``), exit status 2."""
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            # Without standalone mode click returns ctx.exit()'s status (our commands
            # return nothing else); pass it on as the process status.
            sys.exit(code if isinstance(code, int) else 0)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.UsageError as err:
            where = f"{err.ctx.command_path}: " if err.ctx else ""
            hint = f" (see {err.ctx.command_path} --help)" if err.ctx else ""
            click.echo(f"error: {where}{err.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpeechgenError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)


def _keras_backend():
    """The backend Keras will use, read as Keras reads it (``KERAS_BACKEND``, else
    ``$KERAS_HOME/keras.json``, default ``~/.keras``), without importing Keras (which
    under TensorFlow would import it with its chatter)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _quiet_tensorflow():
    """Import TensorFlow without its C++ start-up chatter (CUDA probes, oneDNN notes).

    Some of those lines are printed by absl before any log level applies, so stderr is
    pointed at /dev/null for the import alone; a failing import still raises normally.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or _keras_backend() != "tensorflow":
        return  # under another backend sample and say need no TensorFlow at all
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _presets():
    """The preset names, without importing the config module (and YAML) for --help."""
    return sorted(p.stem for p in (Path(__file__).resolve().parent / "configs").glob("*.yaml"))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.version_option(package_name="speechgen")
@click.pass_context
def main(ctx, debug):
    """Learn to generate raw audio (speech, music) with stateful LSTMs."""
    ctx.obj = {"debug": debug}


@main.command()
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Run directory to create.")
@click.option("--config", "configs", multiple=True, help=f"YAML config file or preset name ({', '.join(_presets())}); repeatable. Without --config and --set: the recommended recipe, speech.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one config key; repeatable.")
@click.option("--resume", "resume_run", type=click.Path(path_type=Path), help="Continue the run in this directory from its last checkpoint.")
@click.option("--strategy", type=click.Choice(["none", "mirrored", "multi-worker"]), default="none", show_default=True, help="mirrored: all local devices (GPUs, or logical CPUs); multi-worker: the hosts in TF_CONFIG. See docs/distributed.md.")
@click.option("--tensorboard", is_flag=True, help="Write TensorBoard logs (scalars; generated audio at each new best model) to RUN/tensorboard.")
@click.option("--force", is_flag=True, help="Overwrite the run files in an existing --out.")
@click.option("--quiet", is_flag=True, help="One plain line per epoch instead of a progress bar (the default when the output is not a terminal).")
def train(data, out, configs, sets, resume_run, strategy, tensorboard, force, quiet):
    """Train a model on DATA (a WAV/SPHERE file or a corpus folder) into --out.

    With --resume RUN, continue RUN from its last checkpoint instead (the last finished
    epoch, or a batch within the next with checkpoint_batches; DATA, --out and --config
    come from the run; --set may change e.g. epochs).
    """
    if resume_run is not None:
        if data is not None or out is not None or configs or force:
            raise UsageError("--resume RUN takes no DATA, --out, --config or --force (they come from RUN)")
    elif data is None or out is None:
        raise UsageError("train needs DATA and --out (or --resume RUN)")
    from .config import load_config

    # The bare headline usage, `speechgen train data.wav`, gets the recommended recipe;
    # --set without --config overrides the built-in defaults (docs/configuration.md).
    if not resume_run and not configs and not sets:
        configs = (DEFAULT_RECIPE,)  # recorded in RUN/config.yaml like any other
    config = None if resume_run else load_config(configs, sets)
    _quiet_tensorflow()
    from .train import resume
    from .training.rundir import interrupt_message, nan_message
    from .train import train as run_training

    verbose = _verbosity(quiet)
    if resume_run is not None:
        out = resume_run
        result = resume(resume_run, sets, verbose=verbose, strategy=strategy, tensorboard=tensorboard)
    else:
        result = run_training(
            data, out, config, force=force, verbose=verbose, strategy=strategy, tensorboard=tensorboard
        )
    if result.interrupted:
        click.echo(interrupt_message(result, out), err=True)
        sys.exit(130)
    if result.stopped_by_nan:
        raise SpeechgenError(nan_message(result, out))
    if strategy == "multi-worker":
        from .training.distribute import chief_in_tf_config

        if not chief_in_tf_config():
            click.echo(f"worker finished; the chief worker writes the run to {out}")
            return
    mse = result.summary["splits_mse"]
    if mse:
        from .evaluate import format_table

        click.echo(format_table(mse))
    click.echo(f"run written to {out}")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="WAV file to write.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Seconds to generate (default: 10). Not for phone-conditioned models: their timeline sets the length.")
@click.option("--prime", "prime_path", type=click.Path(path_type=Path), help="WAV to prime the state with (default: held-out audio of the training data, picked by --seed). For a phone-conditioned model, only with --phones.")
@click.option("--prime-seconds", type=click.FloatRange(min=0, min_open=True), help="Seconds of priming audio (default: one training sequence). Not for phone-conditioned models: their prime is one window.")
@click.option("--include-prime", is_flag=True, help="Write the priming audio before the generated audio (default: only the generated audio).")
@click.option("--seed", type=int, default=0, show_default=True, help="Picks the held-out stretch or utterance that primes the model (and where in --prime to start).")
@click.option("--phones", "phones_path", type=click.Path(path_type=Path), help="Phone timeline (.PHN) to drive a phone-conditioned model; sets the length.")
@click.option("--temperature", type=click.FloatRange(min=0), help="Categorical models: the softmax temperature of each draw (default 1: the model's distribution; 0: the most likely value).")
@click.option("--noise", type=click.FloatRange(min=0), help="MSE models: add noise of N x the validation RMSE to each prediction (default 0: deterministic).")
@click.option("--noise-seed", type=int, default=0, show_default=True, help="Seeds the random draws (--temperature or --noise above 0).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.pass_context
def sample(ctx, model_path, out, seconds, prime_path, prime_seconds, include_prime, seed, phones_path, temperature,
           noise, noise_seed, force):
    """Generate audio free-running from MODEL after priming it with real audio.

    A phone-conditioned model follows a phone timeline: --phones, or by default the
    labels of a held-out utterance (whose first window of samples primes it). The WAV
    holds only the generated audio, for every kind of model; --include-prime puts the
    prime before it.
    """
    given = _given(ctx, "seed", "noise_seed")
    if "seed" in given and phones_path is not None and prime_path is None:
        raise UsageError("--seed only applies without --phones, or with --prime (a --phones timeline with no --prime starts from silence)")
    if out.exists() and not force:
        raise SpeechgenError(f"{out}: already exists; choose another --out or pass --force")
    _check_writable(out)
    _quiet_tensorflow()
    from .sample import sample_to_wav

    info = sample_to_wav(
        model_path, out, seconds, prime_path, prime_seconds, seed, _progress_printer(), phones_path, temperature,
        noise_seed, include_prime, noise=noise, noise_seed_given="noise_seed" in given,
    )
    click.echo(
        f"wrote {info['seconds']:.2f} s to {out} ({info['rate']} Hz"
        f"{', starting with the prime' if info['include_prime'] else ''}) primed with "
        f"{info['prime_seconds']:.3f} s of {info['prime_source']}; "
        f"generation ran at {info['real_time_factor'] * info['rate']:,.0f} samples/s, "
        f"{info['real_time_factor']:.2f}x real time"
    )


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("text", required=False)
@click.option("--phones", help="The model's phones to say, separated by spaces (',' for a pause), instead of TEXT: no dictionary.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="WAV file to write.")
@click.option("--rate", type=float, default=1.0, show_default=True, help="Speaking rate: each phone lasts its median training duration / RATE (2: twice as fast).")
@click.option("--temperature", type=click.FloatRange(min=0), help="Categorical models: the softmax temperature of each draw (default 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the random draws.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def say(model_path, text, phones, out, rate, temperature, seed, force):
    """Speak TEXT (words of the CMU pronouncing dictionary) with a phone-conditioned MODEL.

    Each phone lasts its median duration in the training corpus (divided by --rate),
    with silence at the start, the end and each , . ; : ! ?; the phone timeline then
    drives generation as `sample --phones` does. The WAV holds the whole timeline.
    """
    if out.exists() and not force:
        raise SpeechgenError(f"{out}: already exists; choose another --out or pass --force")
    _check_writable(out)
    _quiet_tensorflow()
    from .say import say_to_wav

    info = say_to_wav(model_path, out, text, phones, rate, temperature, seed, _progress_printer())
    click.echo(
        f"wrote {info['seconds']:.2f} s to {out} ({info['rate']} Hz): {' '.join(info['phones'])}; "
        f"generation ran at {info['real_time_factor']:.2f}x real time"
    )


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--free-running", is_flag=True, help="Measure drift instead: generate from held-out primes and score it.")
@click.option("--seconds", type=click.FloatRange(min=3), default=60.0, show_default=True, help="With --free-running: seconds to generate per prime.")
@click.option("--primes", type=click.IntRange(min=1), default=4, show_default=True, help="With --free-running: how many primes (parallel streams).")
@click.option("--temperature", type=click.FloatRange(min=0), help="With --free-running or --intelligibility, categorical models: the softmax temperature (default 1).")
@click.option("--noise", type=click.FloatRange(min=0), help="With --free-running, MSE models: noise of N x validation RMSE on each prediction (default 0).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --free-running: picks the held-out primes. With --intelligibility: seeds the draws and the control's shuffle.")
@click.option("--noise-seed", type=int, default=0, show_default=True, help="With --free-running: seeds the random draws.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), help="With --free-running: write the RMS/flatness plot here, and a spectrogram of generated vs real audio beside it (NAME-spectrogram.png).")
@click.option("--intelligibility", is_flag=True, help="Phone-conditioned models: generate each test utterance from its .PHN timeline (and from a shuffled one) and report the PocketSphinx phone error rates and MCD-DTW against the real recordings.")
@click.option("--utterances", type=click.IntRange(min=1), help="With --intelligibility: judge only the first N test utterances (default: all).")
@click.pass_context
def evaluate(ctx, model_path, data, as_json, free_running, seconds, primes, temperature, noise, seed, noise_seed,
             plot_path, intelligibility, utterances):
    """Per-split teacher-forced MSE of MODEL on DATA (default: its training data), with baselines.

    With --free-running: generate from held-out primes and report the free-running MSE
    at three horizons and the stable seconds (until per-second RMS or spectral flatness
    leave the training audio's 1st-99th percentile range for 3 s in a row).

    With --intelligibility (phone-conditioned models): generate each test utterance from
    its .PHN timeline and from a shuffled one; report PocketSphinx phone error rates of
    those and of the real recordings, and MCD-DTW against the recordings.
    """
    if intelligibility:
        if free_running:
            raise UsageError("--intelligibility and --free-running are two reports; ask for one at a time")
        given = _given(ctx, "seconds", "primes", "noise", "noise_seed", "plot_path")
        if given:
            raise UsageError(f"--{given[0].replace('_path', '').replace('_', '-')} only applies with --free-running")
    elif utterances is not None:
        raise UsageError("--utterances only applies with --intelligibility")
    drift_only = ("seconds", "primes", "temperature", "noise", "seed", "noise_seed", "plot_path")
    given = _given(ctx, *drift_only)
    if given and not free_running and not intelligibility:
        raise UsageError(f"--{given[0].replace('_path', '').replace('_', '-')} only applies with --free-running")
    _quiet_tensorflow()
    from .evaluate import evaluate_model, format_table
    from .model import load_model
    from .data.corpus import reopen_corpus

    model = load_model(model_path)
    corpus = reopen_corpus(model.train_config, data, hint="move it back, or give other data: speechgen evaluate MODEL DATA")
    if corpus.rate != model.sample_rate:
        raise SpeechgenError(
            f"{data or corpus.source}: sample rate {corpus.rate} Hz, but the model works at {model.sample_rate} Hz; "
            "resample the data first"
        )
    if intelligibility:
        return _intelligibility(model, corpus, model_path, as_json, temperature, seed, utterances)
    if free_running:
        from .measures.drift import format_report, free_running_report, plot_drift
        from .measures.quality import format_quality, plot_spectrograms
        from .sample import generation_settings

        temperature, _ = generation_settings(model, temperature, noise, "noise_seed" in given)
        spectrogram_path = None
        if plot_path is not None:
            spectrogram_path = plot_path.with_name(plot_path.stem + "-spectrogram.png")
            for path in (plot_path, spectrogram_path):
                if path.exists():
                    raise SpeechgenError(f"{path}: already exists; choose another --plot")
            _check_writable(plot_path)
        show = _progress_printer(f" ({primes} streams)" if primes > 1 else "")

        def progress(done, total, elapsed):
            show(done, total, elapsed, done * model.hop / model.sample_rate / max(elapsed, 1e-9))

        report = free_running_report(model, corpus, seconds, primes, temperature, seed, progress=progress,
                                     noise_seed=noise_seed, noise=noise or 0.0)
        generated, held_out = report.pop("generated"), report.pop("held_out")
        if plot_path:
            import numpy as np

            plot_drift(report, plot_path)
            plot_spectrograms(generated[0], np.concatenate(held_out)[: len(generated[0])], model.sample_rate,
                              spectrogram_path, seconds=min(10.0, seconds))
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            click.echo(format_report(report))
            click.echo("")
            click.echo(format_quality(report["quality"]))
        return
    results = evaluate_model(model, corpus)
    if as_json:
        click.echo(json.dumps({"model": str(model_path), "data": corpus.source, "splits": results}, indent=2))
    else:
        click.echo(f"{model_path} on {corpus.source} (MSE in normalised units)")
        click.echo(format_table(results))


def _intelligibility(model, corpus, model_path, as_json, temperature, seed, utterances):
    """``evaluate --intelligibility``: the report of speechgen/intelligibility.py, printed."""
    from .intelligibility import intelligibility_report
    from .measures.intelligibility import format_report

    def progress(done, total):
        click.echo(f"  {done}/{total} utterances judged", err=True)

    report = intelligibility_report(model, corpus, utterances, temperature, seed, progress=progress)
    report = {"model": str(model_path), "data": corpus.source, **report}
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("wav", type=click.Path(path_type=Path))
@click.option("--phones", "phones_path", type=click.Path(path_type=Path), help="The utterance's .PHN (default: the one beside WAV).")
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Folder for the WAVs and the plot.")
@click.option("--force", is_flag=True, help="Overwrite earlier reconstructions in --out-dir.")
def reconstruct(model_path, wav, phones_path, out_dir, force):
    """Reconstruct WAV teacher-forced and free-running (only the first window given)."""
    _quiet_tensorflow()
    from .reconstruct import reconstruct as run_reconstruct

    r = run_reconstruct(model_path, wav, out_dir, phones_path, force)
    click.echo(f"{wav} ({r['seconds']:.2f} s){', phones ' + r['phones'] if r['phones'] else ''}")
    click.echo(f"  teacher-forced MSE {r['teacher_forced_mse']:.6f}")
    click.echo(f"  free-running MSE   {r['free_running_mse']:.6f}")
    click.echo(f"  zero predictor MSE {r['zero_mse']:.6f}  (normalised units)")
    click.echo(f"wrote original.wav, teacher_forced.wav, free_running.wav, reconstruction.png to {out_dir}")


def _verbosity(quiet):
    """Training progress: 1, Keras' live bar, on a terminal; 2, one plain line per epoch,
    with --quiet or when stdout is not a terminal (a log file, CI, nohup), since the
    bar writes carriage returns and colour codes."""
    return 2 if quiet or not sys.stdout.isatty() else 1


def _given(ctx, *names):
    """Those of the option ``names`` given on the command line (not left at their default)."""
    return [n for n in names if ctx.get_parameter_source(n).name != "DEFAULT"]


PLAIN_EVERY_S = 30.0  # seconds between progress lines when stderr is not a terminal


def _progress_printer(suffix=""):
    """A ``progress(done, total, elapsed_s, real_time_factor)`` callback for generation.

    On a terminal: one live line on stderr, redrawn with carriage returns. Anything
    else (a log file, CI, nohup): a plain line at most every ``PLAIN_EVERY_S`` seconds,
    so long runs show they are moving and short ones stay quiet.
    """
    live = sys.stderr.isatty()
    last = [time.monotonic()]

    def progress(done, total, elapsed, rate_factor):
        text = f"  {done}/{total} steps, {rate_factor:.2f}x real time{suffix}"
        if live:
            click.echo(f"\r{text}", nl=False, err=True)
            if done == total:
                click.echo("", err=True)
        elif done < total and time.monotonic() - last[0] >= PLAIN_EVERY_S:
            last[0] = time.monotonic()
            click.echo(text, err=True)

    return progress


def _check_writable(path):
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise SpeechgenError(f"{folder}: no such folder for {path}")
    if not os.access(folder, os.W_OK):
        raise SpeechgenError(f"{folder}: cannot write there (permission denied)")


if __name__ == "__main__":
    sys.exit(main())
