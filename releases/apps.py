from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from releases import pipelines, receivers, release_template
        from releases import signals as release_signals
        from releases.templatetags import pipeline_tags
        from repos import page_cache
        from repos import signals as repo_signals
        from repos import templates as repo_templates
        from reviews import signals as review_signals

        # After reviews' own receivers (the app comes later): a push has moved its pull requests, whose builds
        # are queued first, when the pushed branch's build is looked for.
        repo_signals.push_received.connect(receivers.build_pushed_branches, dispatch_uid="releases.build_push")
        # After the builds: a pipeline's build action follows the build the push just queued.
        repo_signals.push_received.connect(receivers.run_pipelines, dispatch_uid="releases.run_pipelines")
        release_signals.build_ended.connect(pipelines.build_ended, dispatch_uid="releases.pipelines.build_ended")
        release_signals.deployment_ended.connect(
            pipelines.deployment_ended, dispatch_uid="releases.pipelines.deployment_ended"
        )
        for action in ("opened", "synchronized"):
            getattr(review_signals, f"pull_request_{action}").connect(
                receivers.build_pull_request, dispatch_uid=f"releases.build_pull_request_{action}"
            )
        # What each environment runs, in the repository header: rendered anew for every view, even of a kept page.
        page_cache.register_live_part(pipeline_tags.environment_strip)
        # "New repository" offers the release template; repos calls its creator without importing releases.
        repo_templates.register(
            release_template.KEY,
            release_template.LABEL,
            release_template.DESCRIPTION,
            release_template.create_from_release_template,
        )

    def warm_up(self) -> None:
        """Compile what the repository header's environment strip asks (called by portal.warmup at a web start)."""
        from releases.templatetags import pipeline_tags

        pipeline_tags.warm_up()
