"""The fitted start of a run's target: which model, from which slices, and what is said of it."""

from __future__ import annotations

from napari_dmcr.labels import distinct_images
from napari_dmcr.reconstruction.anisotropy import is_anisotropic
from napari_dmcr.reconstruction.pluri_gaussian import pluri_gaussian_start
from napari_dmcr.reconstruction.starts import AUTO_MODELS, fitted_start


def target_start(target, phase, shape, seed=0, *, start="auto", periodic=False, cancel=None):
    """The fitted start of ``target`` (a :class:`~napari_dmcr.reconstruction.targets.Target`).

    Three or more labels: :func:`~napari_dmcr.reconstruction.pluri_gaussian.pluri_gaussian_start`
    (labels). Two: :func:`~napari_dmcr.reconstruction.starts.fitted_start` of ``start`` (``"auto"``
    or a model) on the slices as given (their shapes; moved to one fraction, a clast loses its
    rim), each once, or the three in order, stretched per axis, where they show an anisotropic
    material (:meth:`~napari_dmcr.reconstruction.targets.Target.axis_scales`).

    Returns
    -------
    start : numpy.ndarray
        The set of ``phase`` (bool), or labels for three or more.
    choice : dict
        The model chosen (``parameters["start_model"]``).
    notes : list of str
    """
    if len(target.labels) > 2:
        labels, choice = pluri_gaussian_start(target.images, shape, seed, periodic=periodic, cancel=cancel)
        return labels, choice, []
    scales = target.axis_scales() if len(shape) == 3 else None
    images = target.given or target.images
    cut, choice = fitted_start(
        images if is_anisotropic(scales) else distinct_images(images),
        phase,
        shape,
        seed,
        models=AUTO_MODELS if start == "auto" else (start,),
        periodic=periodic,
        scales=scales,
        cancel=cancel,
    )
    notes = []
    if is_anisotropic(scales):
        stretch = ", ".join(f"{axis} {value:.2f}" for axis, value in zip("zyx", scales))
        notes.append(f"the slices show an anisotropic material: the start is stretched by {stretch}")
    return cut, choice, notes
