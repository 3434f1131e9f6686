"""The ``dmcr`` command line: the same engine as the napari plugin, without a GUI.

Each sub-command lives in its own module of this package and provides ``add_parser(subparsers)``,
which registers the sub-command and sets ``run`` (a function of the parsed arguments) as its default.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from napari_dmcr import __version__
from napari_dmcr.errors import InputError
from napari_dmcr.progress import Cancelled

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
    return parser


def add_vgg19_weights_option(parser):
    """The ``--vgg19-weights`` option of the sub-commands that may compute Gram matrices."""
    parser.add_argument("--vgg19-weights", help="normalized VGG-19 .npz (see docs/descriptors.md)")


def add_moduli_options(parser, what="the properties"):
    """``--material``, ``--young``, ``--poisson``: the phase moduli of the sub-commands that
    compute properties; :func:`moduli_settings` reads them back."""
    from napari_dmcr.properties.materials import DEFAULT_MATERIAL, MATERIALS

    parser.add_argument(
        "--material",
        choices=sorted(MATERIALS),
        default=DEFAULT_MATERIAL,
        help=f"phase moduli of {what} where --young/--poisson are not given (default: %(default)s; "
        "see docs/properties.md)",
    )
    parser.add_argument(
        "--young", type=float, nargs="+", metavar="E", help="Young's modulus of each label, in label order"
    )
    parser.add_argument(
        "--poisson", type=float, nargs="+", metavar="NU", help="Poisson ratio of each label, in label order"
    )


def moduli_settings(args):
    """The property settings of :func:`add_moduli_options`."""
    return {"material": args.material, "young": args.young, "poisson": args.poisson}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "vgg19_weights", None):
        from napari_dmcr.descriptors.vgg19_weights import ENV_VARIABLE

        # The weight loader looks here before the cache: the whole run uses this file.
        os.environ[ENV_VARIABLE] = args.vgg19_weights
    try:
        return args.run(args) or 0
    except (InputError, FileNotFoundError) as error:
        print(f"dmcr {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print(f"dmcr {args.command}: interrupted", file=sys.stderr)
        return 130
