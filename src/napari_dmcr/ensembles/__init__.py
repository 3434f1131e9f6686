"""Many realizations (seeds, slices) on a Dask cluster, and the spread of what they measure.

* :func:`run_ensemble`: the tasks, each core written as its task ends, a rerun skipping
  finished ones, a summary with the mean and SD of every measure and property;
* :func:`realize`: one realization as a worker runs it.
"""

from napari_dmcr.ensembles.realization import realize
from napari_dmcr.ensembles.run import SUMMARY, run_ensemble, summarize

__all__ = ["SUMMARY", "realize", "run_ensemble", "summarize"]
