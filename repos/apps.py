from django.apps import AppConfig
from django.db.models import F


class ReposConfig(AppConfig):
    name = "repos"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from repos import receivers, signals

        signals.push_received.connect(receivers.follow_up_push, dispatch_uid="repos.follow_up_push")

    def warm_up(self) -> None:
        """Load what the code pages otherwise load on their first use (called by portal.warmup at a web start)."""
        from repos import access, render

        render.warm_up()
        access.warm_up()

    def warm_up_thread(self) -> None:
        """Open, in the thread that takes a web process's first requests, the repositories pushed to last (as
        many as a thread keeps open), and read what their first page reads (called by portal.warmup)."""
        from repos import git
        from repos.models import Repository

        for repo in Repository.objects.order_by(*_PUSHED_LAST)[: git.HANDLES_PER_THREAD].only("pk"):
            git.open_ahead(repo.path)

    def warm_up_pages(self) -> list[str]:
        """Code pages for that thread to render once, so that the first pages readers ask for do not run the code
        pages' code for the first time (called by portal.warmup): the root, a folder, a file and the history of
        the public repository pushed to last, named by its commit's sha, so that no page a reader asks for by a
        branch's name (nor its README) is made ahead of them."""
        from repos import code, git
        from repos.models import Repository, Visibility

        repo = Repository.objects.filter(visibility=Visibility.PUBLIC).order_by(*_PUSHED_LAST).first()
        if repo is None:
            return []
        try:
            head = git.resolve_commit(repo.path, repo.default_branch)
            entries = git.tree_entries(repo.path, git.entry(repo.path, head.sha, "").sha, "")
        except (git.RefNotFound, git.GitError):
            return []
        prefix = repo.get_absolute_url()
        pages = [f"{prefix}/tree/{head.sha}", f"{prefix}/commits/{head.sha}"]
        for kind in ("tree", "blob"):
            # A name a URL carries as it is (the pages are asked for by their decoded path).
            found = next((e for e in entries if e.kind == kind and code.quote_path(e.path) == e.path), None)
            if found is not None:
                pages.append(f"{prefix}/{kind}/{head.sha}/{found.path}")
        return pages


# The repositories pushed to most recently first, then the newest.
_PUSHED_LAST = (F("pushed").desc(nulls_last=True), "-pk")
