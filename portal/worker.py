"""The rq worker the portal runs (settings.RQ's WORKER_CLASS): rq's, with a listener that stops at once.

rq's worker listens for commands (stop a job, shut down) on a Redis channel from a thread that waits for messages
in periods of 60 seconds; when the worker stops, that thread may have just begun such a wait, and the worker waits
for it, so a stop could take up to a minute. Here the thread waits one second at a time."""

from rq import SimpleWorker
from rq import Worker as RqWorker

LISTEN_SECONDS = 1


class ListenBriefly:
    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=LISTEN_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )


class Worker(ListenBriefly, RqWorker):
    """Forks a work horse for each job, as rq's does."""


class InProcessWorker(ListenBriefly, SimpleWorker):
    """Runs each job in the worker's own process, as rq's SimpleWorker does: for tests."""
