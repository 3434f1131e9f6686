"""Multigrid descriptor levels: descriptors of 2x, 4x, ... average-pooled fields.

Level k sees the field average-pooled by 2^k, so a descriptor with a short range L at level k
covers distances up to about L * 2^k pixels of the original field (long-range order at the cost
of resolution). Pooled fields are grey; the relaxed descriptors are defined on them.
"""

from __future__ import annotations

import torch.nn.functional as F

from napari_dmcr.errors import InputError


def pooled(field, level):
    """Average-pool a stack ``(n, h, w)`` by ``2**level`` (a trailing remainder is dropped)."""
    if level == 0:
        return field
    factor = 2**level
    if min(field.shape[-2:]) < factor:
        raise InputError(
            f"multigrid level {level} pools by {factor}, more than the slice size "
            f"{tuple(field.shape[-2:])}; use fewer levels"
        )
    return F.avg_pool2d(field.unsqueeze(1), factor).squeeze(1)
