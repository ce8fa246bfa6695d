"""``s2vt serve``: a local web page and JSON API that caption uploaded videos.

FastAPI + uvicorn with one plain HTML page: the stack most Python ML services use, light
(no front-end build, no CDN, the page works offline), and it gives an OpenAPI description
of the API for free. Gradio would add a heavy dependency and its own front-end for a page
this small.

- :mod:`s2vt.serve.limits`: the bounds (upload size, workers, queue, decode timeout);
- :mod:`s2vt.serve.uploads`: streaming an upload into a private folder;
- :mod:`s2vt.serve.engine`: captioning with contained decoding and bounded concurrency;
- :mod:`s2vt.serve.app`: the routes (``/``, ``/api/caption``, ``/api/health``).
"""

from s2vt.serve.limits import ServeLimits

__all__ = ["ServeLimits"]
