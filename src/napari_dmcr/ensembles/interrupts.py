"""The workers of a local cluster ignore Ctrl-C and SIGTERM: a terminal, or a batch scheduler,
sends them to the workers too, and they would die with tracebacks. Only the client stops an
ensemble: it cancels the tasks, then closes the cluster (workers still end with their parent)."""

import signal

from distributed.diagnostics.plugin import WorkerPlugin


class IgnoreInterrupt(WorkerPlugin):
    """Set up on every worker of the local cluster, restarted ones included."""

    def setup(self, worker):
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
