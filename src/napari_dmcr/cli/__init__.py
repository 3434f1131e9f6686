"""The ``dmcr`` command line: the same engine as the napari plugin, without a GUI.

Each sub-command lives in its own module of this package and provides ``add_parser(subparsers)``,
which registers the sub-command and sets ``run`` (a function of the parsed arguments) as its default.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import math
import os
import signal
import sys
import warnings

from napari_dmcr import __version__
from napari_dmcr.errors import InputError
from napari_dmcr.progress import Cancelled
from napari_dmcr.threads import use_threads

SUBCOMMANDS = ["sample", "characterize", "reconstruct", "evaluate", "export", "properties", "ensemble"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmcr",
        description="Differentiable microstructure characterization and reconstruction.",
    )
    parser.add_argument("--version", action="version", version=f"napari-dmcr {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"napari_dmcr.cli.{name}").add_parser(subparsers)
    for subparser in subparsers.choices.values():
        subparser.add_argument(
            "--threads",
            type=int,
            help="compute threads (default: the cores other programs leave free, or $NAPARI_DMCR_THREADS)",
        )
    return parser


def add_vgg19_weights_option(parser, without_gram):
    """The ``--vgg19-weights`` option of the sub-commands that may compute Gram matrices;
    ``without_gram`` says how this sub-command goes without them (``"pass --no-gram"``), and
    errors about the weights or Gram matrices name it."""
    parser.add_argument("--vgg19-weights", help="normalized VGG-19 .npz (see docs/descriptors.md)")
    parser.set_defaults(without_gram=without_gram)


def _user_message(error, args):
    """The error in the sub-command's words: a fix the library words as an API call, as its option."""
    if error.remedy == "without_gram" and getattr(args, "without_gram", None):
        return f"{error.message}; without Gram matrices, {args.without_gram}"
    if error.remedy == "threshold" and hasattr(args, "threshold"):
        return f"{error.message}, or pass --threshold otsu (or a value)"
    return str(error)


def add_threshold_option(parser):
    """``--threshold`` of the sub-commands that read labeled images with :func:`read_labels`."""
    parser.add_argument(
        "--threshold",
        type=_threshold,
        help="segment grey images: 'otsu' or a value, label 1 above it (default: refuse grey images)",
    )


def _threshold(text):
    """``--threshold`` as :func:`~napari_dmcr.io.readers.read_image` takes it: ``"otsu"`` or a number."""
    if text == "otsu":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"use 'otsu' or a finite number, got {text!r}")
    return value


def read_slices(paths):
    """2D slices as ``dmcr reconstruct``, ``characterize`` and ``ensemble`` read them: a grey image
    is thresholded (Otsu), and what was done to each file's values is printed."""
    from napari_dmcr.io.readers import read_image

    images = []
    for path in paths:
        steps = []
        images.append(read_image(path, ndim=2, steps=steps))
        for step in steps:
            print(f"  {preprocessing_text({**step, 'source': path})}")
    return images


def preprocessing_text(step):
    """One line for a step :func:`~napari_dmcr.io.readers.read_image` recorded (with its ``source``)."""
    if step["step"] == "threshold":
        return f"{step['source']}: grey values thresholded at {step['value']:.4g} ({step['method']}; {step['rule']})"
    return f"{step['source']}: values renumbered {step['mapping']}"


def read_labels(path, args, ndim=None, **options):
    """Read a labeled image the one way the sub-commands do (``reconstruct`` thresholds and records
    it instead): a grey image is refused, with a hint to segment it, unless ``--threshold`` says
    how to segment it."""
    from napari_dmcr.io.readers import read_image

    return read_image(path, ndim, threshold=args.threshold, **options)


@contextlib.contextmanager
def cancel_on_signals(cancel):
    """Ctrl-C (SIGINT) or SIGTERM (what batch schedulers send) sets ``cancel``; the signals
    received are yielded as a list. A second Ctrl-C kills."""
    received = []

    def stop(signum, frame):
        received.append(signum)
        cancel.cancel()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, previous[signal.SIGINT])

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def add_moduli_options(parser, what="the properties"):
    """``--material``, ``--young``, ``--poisson``: the phase moduli of the sub-commands that
    compute properties; :func:`moduli_settings` reads them back."""
    from napari_dmcr.properties.materials import CHOICES, DEFAULT_MATERIAL

    parser.add_argument(
        "--material",
        choices=CHOICES,
        default=DEFAULT_MATERIAL,
        help=f"phase moduli of {what} where --young/--poisson are not given; auto: the material the "
        "volume's label names name (its sidecar), else the conducting phase is empty pores and the other "
        "label quartz (default: %(default)s; see docs/properties.md)",
    )
    parser.add_argument(
        "--young", type=float, nargs="+", metavar="E", help="Young's modulus of each label, in label order"
    )
    parser.add_argument(
        "--poisson", type=float, nargs="+", metavar="NU", help="Poisson ratio of each label, in label order"
    )


def moduli_settings(args, volume_path=None):
    """The property settings of :func:`add_moduli_options`, with the label names recorded beside
    ``volume_path`` (its sidecar's ``label_names``: what ``--material auto`` reads)."""
    from napari_dmcr.io.writers import read_sidecar

    names = read_sidecar(volume_path).get("label_names") if volume_path else None
    return {"material": args.material, "young": args.young, "poisson": args.poisson, "label_names": names}


@contextlib.contextmanager
def _interrupt_on_sigterm():
    """SIGTERM (what batch schedulers send) stops a command as Ctrl-C does, so that its temporary
    files and its output's lock are cleaned up; reconstruct and ensemble cancel instead."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _show_warning(command, message, category, filename, lineno, file=None, line=None):
    """A warning as one line of the command's output, without the library's source line."""
    print(f"dmcr {command}: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "vgg19_weights", None):
        from napari_dmcr.descriptors.vgg19_weights import ENV_VARIABLE

        # The weight loader looks here before the cache: the whole run uses this file.
        os.environ[ENV_VARIABLE] = args.vgg19_weights
    try:
        with warnings.catch_warnings(), _interrupt_on_sigterm():
            warnings.showwarning = functools.partial(_show_warning, args.command)
            use_threads(args.threads)
            return args.run(args) or 0
    except InputError as error:
        print(f"dmcr {args.command}: error: {_user_message(error, args)}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"dmcr {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FileExistsError as error:  # an output that appeared while the command ran
        print(
            f"dmcr {args.command}: error: {error.filename2 or error.filename} appeared while this command ran and "
            "is kept; choose another --out, or pass --overwrite to replace it",
            file=sys.stderr,
        )
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"dmcr {args.command}: interrupted", file=sys.stderr)
        return 130
