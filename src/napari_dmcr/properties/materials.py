"""Phase moduli a user can start from, in label order, with where the numbers come from.

Replace them with laboratory values of your rock when you have them: the effective moduli scale
with the phases' moduli, and only their ratios shape the result.

* ``auto`` (the default): the material whose label names the volume carries (the bundled
  sample's "gravel" and "matrix": ``conglomerate``); else a pore image. The conducting phase
  (``phase``, the minority label by default) is empty pore space, E = 0, and the other label
  quartz grains, as ``sandstone``: the most common two-phase rock image. Other materials, and
  volumes of three or more labels, are named with ``material`` or given their moduli.
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
AUTO = "auto"
CHOICES = (AUTO, *MATERIALS)
DEFAULT_MATERIAL = AUTO
UNIT = "GPa"
_GRAIN, _PORE = 0, 1  # rows of the sandstone entry that auto assigns by role


def named_material(label_names):
    """The material of :data:`MATERIALS` whose labels bear these names (``{label: name}``, as
    layers and sidecars keep them), else None."""
    names = {int(label): str(name).strip().lower() for label, name in (label_names or {}).items()}
    for material, entry in MATERIALS.items():
        if names and names == dict(enumerate(entry["labels"])):
            return material
    return None


def phase_moduli(material=DEFAULT_MATERIAL, young=None, poisson=None, *, labels=None, phase=None, label_names=None):
    """``(young, poisson, description)``: Young's moduli and Poisson ratios indexed by label, the
    given ones, else the material's; ``description`` says which label is what.

    ``material="auto"`` takes the material the ``label_names`` name (:func:`named_material`);
    else it needs the volume's ``labels`` and its conducting ``phase``: with two labels, the
    phase is empty pores and the other quartz; without ``labels`` (settings checked before the
    volume is read) the moduli are None.
    """
    if material not in CHOICES:
        raise InputError(f"unknown material {material!r}; use one of {', '.join(CHOICES)} or give the moduli")
    if young is not None and poisson is not None:
        return tuple(young), tuple(poisson), "the given moduli"
    named = named_material(label_names) if material == AUTO else None
    if named:
        young, poisson, described = phase_moduli(named, young, poisson)
        return young, poisson, f"auto: the labels are named {described}"
    if material != AUTO:
        chosen = MATERIALS[material]
        described = ", ".join(f"label {k} = {name}" for k, name in enumerate(chosen["labels"]))
        return (
            tuple(chosen["young"] if young is None else young),
            tuple(chosen["poisson"] if poisson is None else poisson),
            f"{material}: {described}",
        )
    if labels is None:
        return None, None, AUTO
    labels = [int(label) for label in labels]
    if len(labels) != 2:
        raise InputError(
            f"the volume has {len(labels)} labels ({', '.join(map(str, labels))}): no material is assumed for it; "
            "give --young and --poisson per label (or --no-elastic)"
        )
    grain = next(label for label in labels if label != phase)
    sandstone = MATERIALS["sandstone"]
    values = {"young": [], "poisson": []}
    for label in range(max(labels) + 1):
        row = _PORE if label == phase else _GRAIN
        values["young"].append(sandstone["young"][row])
        values["poisson"].append(sandstone["poisson"][row])
    given = {"young": young, "poisson": poisson}
    young, poisson = (tuple(given[key] if given[key] is not None else values[key]) for key in ("young", "poisson"))
    return (
        young,
        poisson,
        (
            f"auto: label {phase} = empty pores, label {grain} = quartz grains (a pore image; "
            "name the material, e.g. conglomerate, or give the moduli otherwise)"
        ),
    )
