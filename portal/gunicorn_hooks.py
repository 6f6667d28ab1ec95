"""gunicorn's server hooks for the portal's web processes (`manage.py serve` names this module as its config).

gunicorn reads this module before Django is set up: what the hooks need is imported when they run, in a worker
that has loaded the portal."""


def post_worker_init(worker) -> None:
    """Before a threaded worker takes requests, warm up the thread its pool will give the first ones: the pool
    hands work to an idle thread before it starts another (concurrent.futures.ThreadPoolExecutor)."""
    from portal.warmup import warm_up_thread

    pool = getattr(worker, "tpool", None)
    if pool is not None:
        pool.submit(warm_up_thread, worker.wsgi).result()
