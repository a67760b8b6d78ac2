"""The web studio: a FastAPI app over one static page (`static/index.html`), and `serve_command`.

Endpoints (the OpenAPI schema is at /openapi.json, the interactive docs at /docs):
    GET  /api/checkpoints                 shipped and local checkpoints, by name
    GET  /api/checkpoints/{name}          family, generation shape and the options it honours
    POST /api/primers                     upload a primer MIDI (multipart field `file`) -> primer_id
    POST /api/generate                    queue a job -> job id (202); a full queue: 429
    GET  /api/jobs/{job_id}               stage, progress, then the pieces with their file URLs
    GET  /api/jobs/{job_id}/files/{file}  a MIDI / WAV / PNG file the job wrote (?download=1 to save it)
Every error is JSON `{"detail": "one sentence"}` with a 4xx status. `web/command.py` runs it (`tunesmith serve`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from tunesmith.core.errors import UserError
from tunesmith.web.jobs import JobQueue, QueueFull
from tunesmith.web.studio import MEDIA_TYPES, Catalog, NotFound, Primers, generation_work

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
KiB = 1024


class GenerateBody(BaseModel):
    """A generation job: a checkpoint name from /api/checkpoints and the options its family honours."""

    checkpoint: str = Field(max_length=200)
    n: int = Field(1, ge=1, le=8, description="pieces")
    bars: int = Field(4, ge=1, le=32, description="new bars per piece")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    temperature: float | None = Field(None, gt=0, le=10)
    top_k: int | None = Field(None, ge=1, le=10_000)
    top_p: float | None = Field(None, gt=0, le=1)
    min_p: float | None = Field(None, gt=0, lt=1, description="keep tokens at least this share of the likeliest")
    chords: str | None = Field(None, max_length=400, description='chord names, e.g. "C G Am F"')
    primer_id: str | None = Field(None, max_length=64, description="an id from POST /api/primers")
    primer_bars: int = Field(4, ge=1, le=16)
    audio: bool = Field(True, description="also render WAV")


def create_app(models_dir: Path | None = None, *, max_waiting: int = 4, job_seconds: float = 120.0,
               max_primer_bytes: int = 512 * KiB, work_dir: Path | None = None) -> FastAPI:
    """The studio app: checkpoints from the shipped ones and `models_dir`; jobs (files) under `work_dir`
    (default: a new temporary folder, deleted at shutdown)."""
    import tunesmith.generation.generate  # noqa: F401  (torch and the generation path load now, not on a request)

    own_root = work_dir is None
    root = Path(work_dir or tempfile.mkdtemp(prefix="tunesmith-serve-"))
    catalog, primers = Catalog(models_dir), Primers(root / "primers", max_primer_bytes)
    jobs = JobQueue(root / "jobs", max_waiting=max_waiting, time_limit_s=job_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.close()
        if own_root:  # a folder this app made: primers too
            shutil.rmtree(root, ignore_errors=True)

    app = FastAPI(title="tunesmith studio", version="1", lifespan=lifespan,
                  description="Generate music from tunesmith checkpoints: one job queue, files served by id.")
    app.state.catalog, app.state.primers, app.state.jobs = catalog, primers, jobs
    _errors(app)
    _size_guard(app, max_primer_bytes + 64 * KiB)
    _routes(app, catalog, primers, jobs)
    return app


def _errors(app: FastAPI) -> None:
    """Every error answer is {"detail": one sentence}."""

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(UserError)
    async def bad_input(request: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, error: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=429, headers={"Retry-After": "10"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return JSONResponse({"detail": "the request body is not valid JSON"}, status_code=422)
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return JSONResponse({"detail": f"{where or 'request'}: {first.get('msg', 'invalid value')}"},
                            status_code=422)


def _size_guard(app: FastAPI, primer_most: int, json_most: int = 64 * KiB) -> None:
    """Refuse a POST by its Content-Length before its body is read: a 50 MB primer or a huge JSON body
    never lands in memory; a body without a length (chunked) is refused too."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.method == "POST":
            most = primer_most if request.url.path == "/api/primers" else json_most
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                return JSONResponse({"detail": "send the request with a Content-Length header"}, status_code=411)
            if int(length) > most:
                return JSONResponse({"detail": f"the upload is larger than the {most // KiB} KiB limit"},
                                    status_code=413)
        return await call_next(request)


def _routes(app: FastAPI, catalog: Catalog, primers: Primers, jobs: JobQueue) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/checkpoints", summary="Checkpoints the client may name")
    def checkpoints() -> list[dict]:
        return [{"name": e.name, "source": e.source} for e in catalog.entries().values()]

    @app.get("/api/checkpoints/{name}", summary="A checkpoint's family and the generation options it honours")
    def checkpoint(name: str) -> dict:
        return catalog.describe(name)

    @app.post("/api/primers", summary="Upload a primer MIDI file (checked by the guarded reader)")
    async def upload(file: UploadFile = File(...)) -> dict:
        data = await file.read(primers.max_bytes + 1)
        return await _in_thread(primers.add, data)

    @app.post("/api/generate", status_code=202, summary="Queue a generation job")
    def generate(body: GenerateBody) -> dict:
        catalog.entry(body.checkpoint)  # names and ids are cheap to check: a wrong one is a 4xx, not a 429
        if body.primer_id:
            primers.path(body.primer_id)
        jobs.check_room()  # before loading a model for a job that cannot be queued
        request, name = _request(body, catalog, primers), body.checkpoint
        job = jobs.submit(generation_work(catalog, name, request))
        return {"job_id": job.id, "status_url": f"/api/jobs/{job.id}", "waiting": jobs.waiting()}

    @app.get("/api/jobs/{job_id}", summary="A job's stage, progress and (when done) its pieces")
    def job_status(job_id: str) -> dict:
        return _job(jobs, job_id).public()

    @app.get("/api/jobs/{job_id}/files/{file_id}", summary="A file a job wrote, by the id the job gave it")
    def job_file(job_id: str, file_id: str, download: bool = False) -> FileResponse:
        path = _job(jobs, job_id).files.get(file_id)
        if path is None:
            raise NotFound(f"job {job_id[:40]} has no file {file_id[:40]!r}")
        name = f"tunesmith-{job_id[:8]}-{file_id}"
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], filename=name if download else None,
                            content_disposition_type="attachment" if download else "inline")


async def _in_thread(function, *args):
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


def _job(jobs: JobQueue, job_id: str):
    job = jobs.get(job_id)
    if job is None:
        raise NotFound(f"there is no job {job_id[:40]!r} (finished jobs are kept for a while only)")
    return job


def _request(body: GenerateBody, catalog: Catalog, primers: Primers):
    """The GenerateRequest of `body`; options the family does not honour are one UserError sentence."""
    from tunesmith.generation.generate import GenerateRequest
    from tunesmith.models.base import check_options
    from tunesmith.models.distributions import SamplingConfig

    chords = body.chords.split() if body.chords else None
    if body.chords is not None and not chords:
        raise UserError('chords needs at least one chord name, e.g. "C G Am F"')
    request = GenerateRequest(
        n=body.n, bars=body.bars, seed=body.seed, chords=chords, audio="wav" if body.audio else None, plot=True,
        primer=primers.path(body.primer_id) if body.primer_id else None, primer_bars=body.primer_bars,
        sampling=SamplingConfig(temperature=body.temperature, top_k=body.top_k, top_p=body.top_p,
                                min_p=body.min_p))
    check_options(catalog.load(body.checkpoint).model, request.options())
    return request
