"""What repos itself does when it hears its own announcements; connected in ReposConfig.ready()."""

from portal import jobs


def follow_up_push(sender, *, push_ids: list[int], **kwargs) -> list[str]:
    """Enqueue the follow-up of a push (maintenance of the repository, its READMEs) once it commits; prints nothing."""
    jobs.enqueue_after_commit("post-receive work for pushes", "repos.jobs.run_post_receive", push_ids)
    return []
