"""The FastAPI application of ``deephash serve`` (routes in docs/service.md).

Handlers are plain ``def`` functions, so FastAPI runs them in its thread pool: searches run
concurrently (the core releases the GIL), writes queue on their collection's lock. Plain k-NN
searches of codes take a fast lane below FastAPI (fast_lane.py). Codes travel as base64 of the
packed bytes, one string per code.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

import numpy as np
from fastapi import FastAPI, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

import deephash_engine as de

from .._codes import padding_error, padding_mask
from .._core import _decode_codes, _hits_json
from .encoders import load_encoder
from .fast_lane import SEARCH_ROUTE, FastLane
from .store import FIELD_PATTERN, NAME_PATTERN, Collection, Hits, Store, StoreError
from .uploads import read_upload

_MAX_ID = 2**63 - 1
MERGE_INTERVAL = 1.0  # seconds between merges of MIH tails
UPLOAD_FILES = "one .npy file of raw inputs (one per row), or one or more PNG / JPEG images of the encoder's size"
_IDS = TypeAdapter(list[int])
_PAYLOADS = TypeAdapter(list[Optional[dict[str, Any]]])
_FILTER = TypeAdapter(Optional[dict[str, Any]])


@dataclass(frozen=True)
class Limits:
    """Request limits: bodies past ``max_body_bytes`` and batches past ``max_batch`` items or
    queries get 413; ``max_k`` bounds k (422 past it); a range search answering more than
    ``max_range_hits`` hits in all is refused (422). ``fast_lane``: answer plain k-NN searches of
    codes below FastAPI (fast_lane.py), those expected to take under ``inline_search_ms`` on the
    event loop itself (0: always in a worker thread)."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_batch: int = 10_000
    max_k: int = 10_000
    max_range_hits: int = 100_000
    fast_lane: bool = True
    inline_search_ms: float = 5.0


class CreateCollection(BaseModel):
    name: str = Field(pattern=NAME_PATTERN.pattern,
                      description="letters, digits, '_' and '-', at most 64; also the folder name")
    nbits: int = Field(gt=0, le=65536, description="code length in bits, any length >= 1 (codes of ceil(nbits / 8) bytes, padding bits zero)")
    index: Literal["flat", "mih"] = "flat"
    encoder: Optional[str] = Field(
        None, description="relative to the data folder: a saved unsupervised hasher file, or the folder of a "
                          "finished 'deephash train' run")
    payload_indexes: list[Annotated[str, Field(pattern=FIELD_PATTERN.pattern)]] = Field(
        default_factory=list, description="payload fields to index in SQLite, so filters on them read only the "
                                          "matching rows")


class PayloadIndex(BaseModel):
    field: str = Field(pattern=FIELD_PATTERN.pattern, description="a top-level payload field")


class AddItems(BaseModel):
    codes: Optional[list[str]] = Field(None, description="base64 of each packed code")
    inputs: Optional[list[Any]] = Field(
        None, description="raw inputs for the collection's encoder: feature vectors (a hasher) or uint8 images, "
                          "nested lists (n, H, W[, C]) (a 'deephash train' run)")
    ids: Optional[list[int]] = Field(None, description="caller ids (unique, >= 0); else assigned")
    payloads: Optional[list[Optional[dict[str, Any]]]] = None


class DeleteItems(BaseModel):
    ids: list[int]


class SearchRequest(BaseModel):
    codes: Optional[list[str]] = None
    inputs: Optional[list[Any]] = Field(None, description="raw inputs, as in adds")
    k: Optional[int] = Field(None, gt=0)
    radius: Optional[int] = Field(None, ge=0)
    max_hits: Optional[int] = Field(None, gt=0, description="range searches: refuse (422) an answer of more than "
                                                           "this many hits over all queries; at most the server's "
                                                           "limit, which applies without it")
    filter: Optional[dict[str, Any]] = None
    with_payload: bool = False


class QueryResult(BaseModel):
    ids: list[int]
    distances: list[int]
    payloads: Optional[list[Any]] = None


class SearchResponse(BaseModel):
    results: list[QueryResult] = Field(description="one entry per query, hits in (distance, id) order")


class ServiceError(Exception):
    def __init__(self, status: int, loc: list, message: str):
        super().__init__(message)
        self.status, self.loc, self.message = status, loc, message


def _error_body(loc: list, message: str, kind: str) -> dict:
    return {"detail": [{"loc": loc, "msg": message, "type": kind}]}


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("deephash_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("deephash_http_request_seconds", "HTTP request latency by route",
                                 ["method", "route"], registry=self.registry)
        self.items = Gauge("deephash_collection_items", "items in the index of each collection",
                           ["collection"], registry=self.registry)
        self.queries = Counter("deephash_search_queries", "queries answered, per collection",
                               ["collection"], registry=self.registry)
        self.fast_lane = Counter("deephash_fast_lane_searches",
                                 "plain k-NN searches answered by the fast lane, by where they ran (loop or thread)",
                                 ["ran_on"], registry=self.registry)


def create_app(data: str, token: Optional[str] = None, limits: Limits = Limits(),
               snapshot_interval: float = 60.0) -> FastAPI:
    """The service over the collections under ``data``. ``token`` turns on bearer
    authentication (every route but /health); ``snapshot_interval`` seconds between background
    snapshots of the collections written since their last one (0: none in the background, only
    on request and at shutdown)."""
    store = Store(data)
    metrics = _Metrics()
    stop = threading.Event()

    def maintenance_loop() -> None:
        """Every second: merge MIH tails (recent adds, scanned linearly until merged); every
        ``snapshot_interval`` seconds: snapshot the collections written since their last one."""
        last_snapshot = time.monotonic()
        tick = min(MERGE_INTERVAL, snapshot_interval) if snapshot_interval > 0 else MERGE_INTERVAL
        while not stop.wait(tick):
            try:
                store.merge_tails()
                if snapshot_interval > 0 and time.monotonic() - last_snapshot >= snapshot_interval:
                    last_snapshot = time.monotonic()
                    store.snapshot_all()
            except Exception:  # a full disk must not end the maintenance; SQLite still holds every write
                logging.getLogger("deephash.serve").exception("background maintenance failed; retrying")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = threading.Thread(target=maintenance_loop, name="deephash-maintenance", daemon=True)
        worker.start()
        yield
        stop.set()
        worker.join()
        store.snapshot_all()
        store.close()

    app = FastAPI(title="deephash_engine", version=de.__version__, lifespan=lifespan,
                  description="Binary-code search over HTTP: collections, items, filtered search.")
    app.state.store = store

    fast_lane = None
    if limits.fast_lane:  # `answer`, defined below with the routes, answers as the search route does
        fast_lane = FastLane(store, lambda col, queries, k: answer(col, queries, k, None, None, False, None),
                             limits.max_batch, limits.max_k, limits.inline_search_ms,
                             lambda ran_on: metrics.fast_lane.labels(ran_on).inc())
    app.add_middleware(_Guard, token=token, limits=limits, metrics=metrics, fast_lane=fast_lane)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        loc = exc.field if exc.field[:1] == ["path"] else ["body", *exc.field]
        return JSONResponse(_error_body(loc, exc.message, type(exc).__name__), status_code=exc.status)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return JSONResponse(_error_body(exc.loc, exc.message, "ServiceError"), status_code=exc.status)

    def collection(name: str) -> Collection:
        try:
            return store.get(name)
        except StoreError as exc:
            raise type(exc)(["path", "name"], exc.message) from None

    def batch(loc: str, n: int) -> None:
        if n > limits.max_batch:
            raise ServiceError(413, ["body", loc], f"{n} entries in one request; the limit is {limits.max_batch}")

    def decode(col: Collection, codes: Optional[list[str]], inputs: Optional[list[Any]]) -> np.ndarray:
        if (codes is None) == (inputs is None):
            raise ServiceError(422, ["body", "codes"], "give exactly one of codes and inputs")
        if inputs is not None:
            batch("inputs", len(inputs))
            return _encode(col, inputs)
        batch("codes", len(codes))
        fast = _decode_codes(codes, col.code_size, padding_mask(col.nbits))
        if fast is not None:
            return fast
        for i, text in enumerate(codes):  # some code is bad: find the first and say why
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ServiceError(422, ["body", "codes", i], "not valid base64") from None
            if len(raw) != col.code_size:
                raise ServiceError(422, ["body", "codes", i],
                                   f"a code of {col.nbits} bits is {col.code_size} bytes, got {len(raw)}")
            if raw[-1] & padding_mask(col.nbits):
                raise ServiceError(422, ["body", "codes", i], padding_error(raw[-1], col.nbits))
        # base64 the core does not take as canonical (unused bits set in its last character), which
        # Python's decoder accepts
        return np.frombuffer(bytearray(b"".join(base64.b64decode(text) for text in codes)),
                             np.uint8).reshape(len(codes), col.code_size)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "collections": len(store.names()), "version": de.__version__}

    @app.get("/metrics")
    def prometheus() -> Response:
        for col in store.collections():
            metrics.items.labels(col.name).set(col.index.ntotal)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/collections", status_code=201)
    def create_collection(body: CreateCollection) -> dict:
        if body.encoder is not None:
            load_encoder(store.root, body.encoder, body.nbits)  # refuse a bad encoder up front
        return store.create(body.name, body.nbits, body.index, body.encoder, body.payload_indexes).describe()

    @app.get("/collections")
    def list_collections() -> dict:
        return {"collections": [col.describe() for col in store.collections()]}

    @app.get("/collections/{name}")
    def describe_collection(name: str) -> dict:
        return collection(name).describe()

    @app.delete("/collections/{name}")
    def drop_collection(name: str) -> dict:
        collection(name)
        store.drop(name)
        return {"dropped": name}

    def add_checked(col: Collection, codes: np.ndarray, ids: Optional[list[int]],
                    payloads: Optional[list[Optional[dict]]]) -> dict:
        n = codes.shape[0]
        if ids is not None:
            _check_ids("ids", ids, n)
        if payloads is not None and len(payloads) != n:
            raise ServiceError(422, ["body", "payloads"], f"{len(payloads)} payloads for {n} codes")
        if n == 0:
            return {"ids": []}
        return {"ids": col.add(codes, ids, payloads)}

    def uploaded(col: Collection, files: list[UploadFile]) -> np.ndarray:
        """The codes of uploaded raw inputs (one .npy file, or PNG / JPEG images)."""
        encoder = _encoder(col, ["body", "file"])
        batch("file", len(files))
        inputs = read_upload([(f.filename or f"file {i}", f.file) for i, f in enumerate(files)], encoder.image_shape)
        batch("file", inputs.shape[0])
        return _encode(col, inputs, ["body", "file"])

    @app.post("/collections/{name}/payload_indexes", status_code=201)
    def create_payload_index(name: str, body: PayloadIndex, response: Response) -> dict:
        """Index a payload field (an SQLite expression index), so filters on it read only the
        matching rows; 200 when the index exists already."""
        col = collection(name)
        if not col.create_payload_index(body.field):
            response.status_code = 200
        return {"payload_indexes": col.payload_indexes()}

    @app.delete("/collections/{name}/payload_indexes/{field}")
    def drop_payload_index(name: str, field: str) -> dict:
        col = collection(name)
        try:
            col.drop_payload_index(field)
        except StoreError as exc:
            raise type(exc)(["path", "field"], exc.message) from None
        return {"payload_indexes": col.payload_indexes()}

    @app.post("/collections/{name}/items")
    def add_items(name: str, body: AddItems) -> dict:
        col = collection(name)
        return add_checked(col, decode(col, body.codes, body.inputs), body.ids, body.payloads)

    @app.post("/collections/{name}/items/upload")
    def add_items_upload(name: str, file: list[UploadFile] = File(description=UPLOAD_FILES),
                         ids: Optional[str] = Form(None, description="JSON list of ids, one per input (else assigned)"),
                         payloads: Optional[str] = Form(None, description="JSON list of payload objects (or null), "
                                                                          "one per input")) -> dict:
        """Add raw inputs uploaded as files, encoded by the collection's encoder: one .npy file
        (one input per row), or one or more PNG / JPEG images (one item per file, in order)."""
        col = collection(name)
        id_list = _form_json("ids", ids, _IDS)
        payload_list = _form_json("payloads", payloads, _PAYLOADS)
        return add_checked(col, uploaded(col, file), id_list, payload_list)

    @app.get("/collections/{name}/items/{item_id}")
    def get_item(name: str, item_id: int = Path(ge=0, le=_MAX_ID)) -> dict:
        item = collection(name).get(item_id)
        item["code"] = base64.b64encode(item["code"]).decode("ascii")
        return item

    @app.post("/collections/{name}/items/delete")
    def delete_items(name: str, body: DeleteItems) -> dict:
        col = collection(name)
        batch("ids", len(body.ids))
        _check_ids("ids", body.ids, None)
        return {"removed": col.remove(body.ids)}

    def answer(col: Collection, queries: np.ndarray, k: Optional[int], radius: Optional[int],
               spec: Optional[dict], with_payload: bool, max_hits: Optional[int]) -> bytes:
        """The search answer's JSON; the route and the fast lane (plain k-NN searches) both answer
        with it."""
        if (k is None) == (radius is None):
            raise ServiceError(422, ["body", "k"], "give exactly one of k and radius")
        if k is not None and k > limits.max_k:
            raise ServiceError(422, ["body", "k"], f"k is at most {limits.max_k}, got {k}")
        if max_hits is not None and max_hits > limits.max_range_hits:
            raise ServiceError(422, ["body", "max_hits"],
                               f"max_hits is at most the server's limit, {limits.max_range_hits}, got {max_hits}")
        cap, cap_field = (limits.max_range_hits, ["radius"]) if max_hits is None else (max_hits, ["max_hits"])
        hits = col.search(queries, k, radius, spec, with_payload, cap, cap_field)
        metrics.queries.labels(col.name).inc(len(hits))
        return _results_json(hits)

    @app.post("/collections/{name}/search", response_model=SearchResponse)
    def search(name: str, body: SearchRequest) -> Response:
        col = collection(name)
        queries = decode(col, body.codes, body.inputs)
        return Response(answer(col, queries, body.k, body.radius, body.filter, body.with_payload, body.max_hits),
                        media_type="application/json")

    @app.post("/collections/{name}/search/upload", response_model=SearchResponse)
    def search_upload(name: str, file: list[UploadFile] = File(description=UPLOAD_FILES),
                      k: Optional[int] = Form(None, gt=0), radius: Optional[int] = Form(None, ge=0),
                      max_hits: Optional[int] = Form(None, gt=0, description="as in search"),
                      filter: Optional[str] = Form(None, description="the filter object as JSON text"),
                      with_payload: bool = Form(False)) -> Response:
        """Search with raw inputs uploaded as files, encoded by the collection's encoder: one .npy
        file (one query per row), or one or more PNG / JPEG images (one query per file, in order)."""
        col = collection(name)
        spec = _form_json("filter", filter, _FILTER)
        return Response(answer(col, uploaded(col, file), k, radius, spec, with_payload, max_hits),
                        media_type="application/json")

    @app.post("/collections/{name}/snapshot")
    def snapshot(name: str) -> dict:
        return collection(name).snapshot()

    return app


def _check_ids(loc: str, ids: list[int], n: Optional[int]) -> None:
    if n is not None and len(ids) != n:
        raise ServiceError(422, ["body", loc], f"{len(ids)} ids for {n} codes")
    for i, value in enumerate(ids):
        if not 0 <= value <= _MAX_ID:
            raise ServiceError(422, ["body", loc, i], f"ids are in [0, 2**63 - 1], got {value}")
    if n is not None and len(set(ids)) != len(ids):
        raise ServiceError(422, ["body", loc], "ids repeat within the batch")


def _results_json(hits: Hits) -> bytes:
    """The search answer's JSON, written by the core in one pass (payloads passed on as their
    stored JSON text, never parsed and written again)."""
    return _hits_json(hits.lims, hits.ids, hits.distances, hits.payloads)


def _form_json(field: str, text: Optional[str], adapter: TypeAdapter):
    """A multipart form field holding JSON text, validated as the JSON routes validate it."""
    if text is None:
        return None
    try:
        return adapter.validate_json(text)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise ServiceError(422, ["body", field, *error["loc"]], f"{error['msg']} (JSON text expected)") from None


def _encoder(col: Collection, loc: list):
    if col.encoder is None:
        raise ServiceError(422, loc, f"collection {col.name!r} has no encoder; send codes")
    return load_encoder(col.folder.parent, col.encoder, col.nbits)


def _encode(col: Collection, inputs, loc: Optional[list] = None) -> np.ndarray:
    loc = loc or ["body", "inputs"]
    encoder = _encoder(col, loc)
    if len(inputs) == 0:  # nothing to encode (a model cannot run on an empty batch)
        return np.empty((0, col.code_size), np.uint8)
    try:
        return encoder.encode_inputs(inputs)
    except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: torch on a misshapen image
        raise ServiceError(422, loc, str(exc)) from None


class _Guard:
    """ASGI middleware: bearer token (401) and body size (413) before any handler runs, then the
    fast lane (plain searches), then the request counters and latency by route template."""

    def __init__(self, app, token: Optional[str], limits: Limits, metrics: _Metrics, fast_lane: Optional[FastLane]):
        self.app, self.token, self.limits, self.metrics = app, token, limits, metrics
        self.fast_lane = fast_lane
        self.in_flight = 0  # requests being answered (all on the event loop's thread)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = [500]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        self.in_flight += 1
        try:
            template = await self._answer(scope, receive, send_and_note)
        finally:
            self.in_flight -= 1
        self.metrics.requests.labels(scope["method"], template, str(status[0])).inc()
        self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - started)

    async def _answer(self, scope, receive, send_and_note) -> str:
        """Answers the request (a refusal, the fast lane or the app); returns the route template."""
        refusal = self._refusal(scope)
        fast = None
        if refusal is None:
            body, refusal = await self._read_body(scope, receive)
        if refusal is None and self.fast_lane is not None:
            fast = await self.fast_lane.answer(scope, body, alone=self.in_flight == 1)
        if refusal is not None:
            await refusal(scope, receive, send_and_note)
        elif fast is not None:
            await send_and_note({"type": "http.response.start", "status": 200,
                                 "headers": [(b"content-length", str(len(fast)).encode()),
                                             (b"content-type", b"application/json")]})
            await send_and_note({"type": "http.response.body", "body": fast})
        else:
            delivered = False

            async def replay():
                nonlocal delivered
                if delivered:
                    return await receive()
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send_and_note)
        return SEARCH_ROUTE if fast is not None else getattr(scope.get("route"), "path", "unmatched")

    def _refusal(self, scope) -> Optional[JSONResponse]:
        headers = dict(scope["headers"])
        if self.token is not None and scope["path"] != "/health":
            scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(value, self.token.encode()):
                return JSONResponse(_error_body(["header", "authorization"], "a valid bearer token is required",
                                                "Unauthorized"),
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
            return self._too_big()
        return None

    def _too_big(self) -> JSONResponse:
        return JSONResponse(_error_body(["body"], f"request bodies are at most {self.limits.max_body_bytes} bytes",
                                        "PayloadTooLarge"), status_code=413)

    async def _read_body(self, scope, receive) -> tuple[bytes, Optional[JSONResponse]]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"", None
            size += len(message.get("body", b""))
            if size > self.limits.max_body_bytes:
                return b"", self._too_big()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks), None
