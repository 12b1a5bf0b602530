"""The lookup service: ``audiosim api``, identification over HTTP with the index kept loaded.

Other programs (a radio logger, a content-ID check on upload, an app's
backend) send a clip and get the same answer ``audiosim identify`` gives,
without paying Python, torch and index start-up on every lookup.

- :mod:`~audiosim.api.errors`: :class:`~audiosim.api.errors.BadInput`, a request refused with an HTTP 4xx and a reason.
- :mod:`~audiosim.api.answers`: answers (``Match``, timeline rows, tracks) as JSON-safe dicts.
- :mod:`~audiosim.api.uploads`: an upload (an audio file, or raw PCM and its rate) to samples, within a size limit.
- :mod:`~audiosim.api.service`: the matchers, each on a thread of its own, following newly published index generations.
- :mod:`~audiosim.api.app`: the FastAPI application: routes, error answers, the OpenAPI page.

The command that runs it is :mod:`audiosim.cli.api`.
"""
