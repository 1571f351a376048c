"""`imgdiff-rt web`: an HTTP API and a single page over the same :class:`~imgdiff_rt.pipeline.Pipeline` as the CLI.

``app.create_app`` builds the ASGI application (FastAPI, from the ``web`` extra); ``limits`` and
``request_options`` import nothing beyond the standard library and click, so the CLI can read their defaults
without the extra installed.
"""
