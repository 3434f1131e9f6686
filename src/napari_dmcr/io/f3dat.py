"""A FLAC3D 7 command file (``.f3dat``) for a triaxial test of a grid written by
:func:`napari_dmcr.io.flac3d.write_f3grid`: a template the user runs in FLAC3D."""

from __future__ import annotations

import math
from pathlib import Path

from napari_dmcr.checks import positive_integer, positive_number
from napari_dmcr.errors import InputError
from napari_dmcr.io.atomic import atomic_path


def check_confining_pressures(pressures_mpa):
    """The confining pressures of :func:`write_f3dat` as floats, checked (before any file is
    written): at least one, each a finite number >= 0 in MPa."""
    try:
        pressures = [float(p) for p in pressures_mpa]
    except (TypeError, ValueError):
        pressures = [math.nan]
    if not pressures or any(not (p >= 0 and math.isfinite(p)) for p in pressures):
        raise InputError(f"confining pressures must be non-negative numbers in MPa, got {pressures_mpa!r}")
    return pressures


def write_f3dat(
    path,
    grid_path,
    *,
    group_names,
    confining_pressures_mpa=(0.1, 0.2, 0.3, 0.4),
    platen_velocity=1e-7,
    axial_strain=0.03,
    history_interval=100,
):
    """Write a FLAC3D 7 command file for a triaxial test of an exported grid.

    The file is a template for the user to run in FLAC3D (napari-dmcr does not run FLAC3D): it
    imports the grid, assigns the strain-softening Mohr-Coulomb model to every zone group with
    placeholder properties collected in one block at the top, fixes the bottom face group, and
    for each confining pressure restores the initial state, consolidates isotropically, then
    loads the top at constant velocity while histories record axial stress and axial strain.
    SI units are assumed (m, Pa, kg/m^3).

    Parameters
    ----------
    path : str or Path
        Output ``.f3dat`` file (written atomically).
    grid_path : str or Path
        The ``.f3grid`` written by :func:`write_f3grid` with ``face_groups=True``; referenced
        relative to the folder of ``path``, so keep both files together.
    group_names : iterable of str or dict
        Zone group names (the values of a ``{label: name}`` dict are used).
    confining_pressures_mpa : sequence of float, optional
        Confining pressures in MPa, one triaxial run each.
    platen_velocity : float, optional
        Downward velocity of the top platen, model units per step.
    axial_strain : float, optional
        Axial strain at which each run stops.
    history_interval : int, optional
        Steps between history records.

    Returns
    -------
    path : Path
    """
    path = Path(path)
    if isinstance(group_names, dict):
        group_names = list(group_names.values())
    group_names = [str(name) for name in group_names]
    if not group_names:
        raise InputError("write_f3dat needs at least one zone group name")
    pressures = check_confining_pressures(confining_pressures_mpa)
    platen_velocity = positive_number("platen velocity", platen_velocity)
    axial_strain = positive_number("axial strain", axial_strain)
    history_interval = positive_integer("history interval", history_interval)
    try:
        grid_name = Path(grid_path).resolve().relative_to(path.resolve().parent).as_posix()
    except ValueError:
        grid_name = Path(grid_path).resolve().as_posix()
    text = _F3DAT_HEADER.format(grid=grid_name, pressures=", ".join(f"{p:g}" for p in pressures))
    text += "; ---- EDIT HERE: material properties (placeholders; SI units: Pa, degrees, kg/m^3) ----\n"
    for name in group_names:
        key = _fish_name(name)
        text += (
            f"; {name}\n"
            f"[global {key}_density = 2500.0]\n"
            f"[global {key}_bulk = 5.0e9]\n"
            f"[global {key}_shear = 3.0e9]\n"
            f"[global {key}_cohesion = 5.0e6]         ; peak\n"
            f"[global {key}_friction = 35.0]\n"
            f"[global {key}_dilation = 5.0]\n"
            f"[global {key}_tension = 1.0e6]\n"
            f"[global {key}_residual_cohesion = 1.0e6]\n"
            f"[global {key}_residual_friction = 30.0]\n"
            f"[global {key}_softening_strain = 0.01]  ; plastic shear strain at residual strength\n"
        )
    text += (
        "; loading\n"
        f"[global platen_velocity = {platen_velocity!r}]  ; m per step, downward\n"
        f"[global target_axial_strain = {axial_strain!r}]\n"
        "; ---- END OF EDIT BLOCK ----\n\n"
        "model new\n"
        "model large-strain off\n"
        f"zone import '{grid_name}' use-given-ids\n"
        "zone cmodel assign strain-softening\n"
    )
    for name in group_names:
        key = _fish_name(name)
        text += (
            f"table '{key}-cohesion' add (0.0, [{key}_cohesion]) "
            f"([{key}_softening_strain], [{key}_residual_cohesion])\n"
            f"table '{key}-friction' add (0.0, [{key}_friction]) "
            f"([{key}_softening_strain], [{key}_residual_friction])\n"
            f"zone initialize density [{key}_density] range group '{name}'\n"
            f"zone property bulk [{key}_bulk] shear [{key}_shear] cohesion [{key}_cohesion] "
            f"friction [{key}_friction] dilation [{key}_dilation] tension [{key}_tension] "
            f"range group '{name}'\n"
            f"zone property table-cohesion '{key}-cohesion' table-friction '{key}-friction' "
            f"range group '{name}'\n"
        )
    text += _F3DAT_SETUP.format(interval=history_interval)
    for pressure in pressures:
        pascal = pressure * 1e6
        tag = f"{pressure:g}MPa"
        text += _F3DAT_RUN.format(tag=tag, mpa=f"{pressure:g}", stress=f"{-pascal:.6g}")
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


_F3DAT_HEADER = """\
; Triaxial compression of a napari-dmcr digital core: FLAC3D 7 command file (TEMPLATE).
; Written by napari-dmcr; napari-dmcr does not run FLAC3D. Edit the properties below, check the
; commands against the documentation of your FLAC3D version, then call this file in FLAC3D.
; Grid: '{grid}' (zone groups per phase; face groups 'bottom', 'top', 'lateral').
; Confining pressures: {pressures} MPa, one run each, restored from the same initial state.
; Units: SI (m, Pa, kg/m^3); compression is negative in FLAC3D.
; Results: one history file per run, axial strain and axial stress (positive in compression).

"""

_F3DAT_SETUP = """
; bottom platen: fixed
zone face apply velocity-x 0 range group 'bottom'
zone face apply velocity-y 0 range group 'bottom'
zone face apply velocity-z 0 range group 'bottom'

fish define specimen_extent
    global z_top = -1.0e30
    global z_bottom = 1.0e30
    loop foreach local gp gp.list
        z_top = math.max(z_top, gp.pos.z(gp))
        z_bottom = math.min(z_bottom, gp.pos.z(gp))
    endloop
    global specimen_height = z_top - z_bottom
    global axial_steps = math.ceiling(target_axial_strain * specimen_height / platen_velocity)
end
[specimen_extent]

fish define axial_strain
    ; mean shortening of the top gridpoints over the specimen height
    local shortening = 0.0
    local count = 0
    loop foreach local gp gp.list
        if gp.pos.z(gp) > z_top - 1.0e-6 * specimen_height then
            shortening = shortening - gp.disp.z(gp)
            count = count + 1
        endif
    endloop
    axial_strain = shortening / (count * specimen_height)
end

fish define axial_stress
    ; volume-averaged vertical stress, positive in compression
    local sum = 0.0
    local volume = 0.0
    loop foreach local zp zone.list
        sum = sum - zone.stress.zz(zp) * zone.vol(zp)
        volume = volume + zone.vol(zp)
    endloop
    axial_stress = sum / volume
end

history interval {interval}
fish history name 'axial-strain' axial_strain
fish history name 'axial-stress' axial_stress
model save 'triaxial-initial'
"""

_F3DAT_RUN = """
; ---- confining pressure {mpa} MPa ----
model restore 'triaxial-initial'
zone initialize stress xx {stress} yy {stress} zz {stress}
zone face apply stress-normal {stress} range group 'lateral'
zone face apply stress-normal {stress} range group 'top'
model solve ratio 1.0e-5
zone gridpoint initialize displacement (0, 0, 0)
zone gridpoint initialize velocity (0, 0, 0)
zone face apply-remove range group 'top'
zone face apply velocity-z [-platen_velocity] range group 'top'
history purge
model step [axial_steps]
history export 'axial-strain' 'axial-stress' file 'triaxial-{tag}.txt' truncate
model save 'triaxial-{tag}'
"""


def _fish_name(group_name):
    """A FISH identifier derived from a group name (letters, digits, underscores)."""
    key = "".join(ch if ch.isalnum() else "_" for ch in group_name)
    return key if key[:1].isalpha() else f"g_{key}"
