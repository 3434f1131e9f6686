"""Phase moduli a user can start from, in label order, with where the numbers come from.

Replace them with laboratory values of your rock when you have them: the effective moduli scale
with the phases' moduli, and only their ratios shape the result.

* ``conglomerate`` (the bundled sample: label 0 = gravel clasts, 1 = matrix): clasts of granite,
  E = 50 GPa, nu = 0.25; a weakly cemented sandstone matrix, E = 10 GPa, nu = 0.30 (typical intact
  rock values; Goodman, *Introduction to Rock Mechanics*, 2nd ed., 1989, ch. 6).
* ``sandstone`` (label 0 = quartz grains, 1 = pores, as the Berea volume): quartz, K = 36.6 GPa,
  G = 45.0 GPa, that is E = 95.8 GPa, nu = 0.064 (Mavko, Mukerji and Dvorkin, *The Rock Physics
  Handbook*, 2nd ed., 2009, mineral moduli); empty pores, E = 0.
"""

from __future__ import annotations

from napari_dmcr.errors import InputError

MATERIALS = {
    "conglomerate": {"young": (50.0, 10.0), "poisson": (0.25, 0.30), "labels": ("gravel", "matrix")},
    "sandstone": {"young": (95.8, 0.0), "poisson": (0.064, 0.0), "labels": ("quartz grains", "pores")},
}
DEFAULT_MATERIAL = "conglomerate"
UNIT = "GPa"


def phase_moduli(material=DEFAULT_MATERIAL, young=None, poisson=None):
    """Young's moduli and Poisson ratios in label order: given ones, else the material's."""
    if material not in MATERIALS:
        raise InputError(f"unknown material {material!r}; use one of {', '.join(MATERIALS)} or give the moduli")
    chosen = MATERIALS[material]
    return tuple(chosen["young"] if young is None else young), tuple(chosen["poisson"] if poisson is None else poisson)
