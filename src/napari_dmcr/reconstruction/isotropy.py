"""A 3D term for isotropic targets: the volume's two-point correlation along every 3D vector.

Slice descriptors see the slices normal to z, y and x one by one, and in each only in-plane
vectors. A structure that is right in every such slice can still be wrong along oblique
directions: straight lines and flat patches along the axes, which look the same as round
features to every axis slice. For a target given as one 2D image the material is taken to be
isotropic, so the 3D correlation of the volume must depend on the length of the vector only:

    S2_3D(r) = S2_2D(|r|)   for every vector r of the volume with |r| <= L,

with S2_2D the radially averaged S2 of the target slice (linearly interpolated between whole
radii). The error is relative squared, as for the slice descriptors, over the ball of vectors;
it costs two FFTs of the volume per evaluation.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from napari_dmcr.descriptors.two_point import s2_radial


class IsotropicS2:
    """The isotropic 3D S2 error of phase fields against 2D target images.

    Parameters
    ----------
    images : list of torch.Tensor
        Per matched phase, the target indicator image ``(h, w)`` (pooled to the level).
    shape : tuple of 3 int
        Shape of the volume.
    max_lag : int
        Largest vector length L; lowered to fit the volume (periodic) and the images.
    weight : float
    target_periodic : bool
    """

    def __init__(self, images, shape, max_lag, weight, target_periodic=False):
        self.weight = float(weight)
        self.shape = tuple(shape)
        smallest_image = min(min(image.shape) for image in images)
        limit = min((min(shape) - 1) // 2, (smallest_image - 1) // 2 if target_periodic else smallest_image - 1)
        self.lag = max(1, min(int(max_lag), limit))
        radius, inside = _ball(self.lag)
        self.inside = inside.to(images[0].device)
        self.targets = []
        for image in images:
            profile = s2_radial(image, self.lag, periodic=target_periodic).to(torch.float64).cpu().numpy()
            values = np.interp(radius[inside.numpy()], np.arange(self.lag + 1), profile)
            self.targets.append(torch.as_tensor(values, dtype=image.dtype, device=image.device))

    def errors(self, fields):
        """Relative squared error of each phase field's 3D S2 over the ball (differentiable)."""
        return [
            ((_s2_cube(field, self.lag)[self.inside] - target) ** 2).sum() / (target**2).sum()
            for field, target in zip(fields, self.targets)
        ]


def _s2_cube(field, lag):
    """Periodic S2 of a volume for all vectors with components in -lag..lag: ``(2L+1)^3``."""
    spectrum = torch.fft.rfftn(field)
    correlation = torch.fft.irfftn(spectrum * spectrum.conj(), s=field.shape) / field.numel()
    rolled = torch.roll(correlation, shifts=(lag, lag, lag), dims=(0, 1, 2))
    return rolled[: 2 * lag + 1, : 2 * lag + 1, : 2 * lag + 1]


@functools.lru_cache(maxsize=8)
def _ball(lag):
    """Lengths of the vectors of the ``(2L+1)^3`` cube and the mask of those of length <= L."""
    offsets = np.arange(-lag, lag + 1)
    radius = np.sqrt(offsets[:, None, None] ** 2 + offsets[None, :, None] ** 2 + offsets[None, None, :] ** 2)
    return radius, torch.as_tensor(radius <= lag)
