"""What releases announces about its own runs, for the parts of releases that follow them (pipelines).

Each signal is sent once, with sender=Build or Deployment, from the one service that recorded the end, inside its
transaction, so that whatever listens moves on in the same commit as the end it heard of."""

from django.dispatch import Signal

# A build ended (succeeded, failed, timed out, faulted or was stopped): keyword argument build.
build_ended = Signal()

# A deployment ended (succeeded, failed or stopped, run or not): keyword argument deployment.
deployment_ended = Signal()
