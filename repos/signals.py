"""What repos announces to the apps above it; repos knows no one who listens.

Every signal is sent once, with sender=Repository, from the one service that made the change, inside its
transaction. Receivers that must answer inside a push (refusals, lines to print) run synchronously and return
their answer, which Django's Signal.send() collects; any other work a receiver starts is a job enqueued after
the commit (portal.jobs.enqueue_after_commit), so a rolled-back change starts nothing."""

from django.dispatch import Signal

# Before git updates a ref (pre-receive): keyword arguments repository, principal, update (a RefUpdate).
# Each receiver returns why this update must be refused, or None; any reason refuses the whole push.
push_checked = Signal()

# Refs moved (a push over SSH or HTTP, or the portal writing a branch for the browser): sent once per push by
# repos.services.record_push, inside its transaction, with the keyword arguments repository, updates (the
# RefUpdates), pusher (a User or None), deploy_key (or None), push_ids (the Push rows, in the order of the
# updates) and protocol (Push.Protocol: "ssh", "http" or "web"). Each receiver returns a list of lines to print
# to whoever pushed (or an empty list).
push_received = Signal()

# A repository's life: keyword arguments repository and actor, and for a rename old_name, for a transfer
# old_owner. repository_deleted is sent before the row is deleted, with the repository still readable.
repository_created = Signal()
repository_renamed = Signal()
repository_transferred = Signal()
repository_deleted = Signal()

# The API describing a repository or a branch in Gitea's shapes asks the apps above what only they know (merge
# settings and open pull requests, a branch's protection): keyword arguments repository, principal (who asks) and,
# for a branch, branch (its name). Each receiver returns a dict of Gitea's fields it answers, or None; what nobody
# answers keeps the value repos gives when there are no pull requests and no protection.
repository_described = Signal()
branch_described = Signal()
