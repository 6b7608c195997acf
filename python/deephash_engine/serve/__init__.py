"""The HTTP service behind ``deephash serve``: durable collections (:mod:`.store`) and the
FastAPI application (:mod:`.app`, needs the ``serve`` extra: fastapi, uvicorn, prometheus-client)."""
