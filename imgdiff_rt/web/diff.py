"""``POST /v1/diff``: read the multipart form under the caps and the body deadline, check both uploads and the
request's options, then take a job slot (or answer 429), run the pipeline in a worker thread, keep the job for
its pictures. The slot is taken only once the whole request is in hand: a slow client holds its connection,
never a slot other clients need."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from imgdiff_rt.errors import UsageError
from imgdiff_rt.detectors.ignore import IgnoreSpec
from imgdiff_rt.imageio import decode_image_bytes
from imgdiff_rt.pipeline import Pipeline, Processed
from imgdiff_rt.web.limits import MAX_FIELD_BYTES, MAX_FORM_FIELDS, JobSlots, WebLimits
from imgdiff_rt.config.requests import RequestOptions, parse_ignore, parse_json_options, request_pipeline, shown
from imgdiff_rt.web.store import Job, JobStore, new_job_id
from imgdiff_rt.web.uploads import check_upload, client_file_name, display_name

SIDES = ("left", "right")
OPTIONS_FIELD = "options"
IGNORE_FIELD = "ignore"  # boxes whose changes never count, as --ignore takes them (not a server option)


@dataclass
class Upload:
    side: str
    data: bytes
    name: str  # for error messages: "left (photo.png)"
    file_name: str | None  # for the result's left/right


@dataclass
class DiffRequest:
    uploads: dict[str, Upload]
    overrides: dict[str, Any]
    ignore: IgnoreSpec | None = None  # this request's ignore boxes, on top of the server's


class DiffService:
    def __init__(self, pipeline: Pipeline, options: RequestOptions, limits: WebLimits, notice: str | None = None):
        self.pipeline, self.options, self.limits = pipeline, options, limits
        self.notice = notice  # what `run` would print on stderr for this pipeline (fallback, random weights)
        self.slots = JobSlots(limits.max_jobs)
        self.store = JobStore(limits.keep_s, limits.keep_bytes)

    async def handle(self, request: Request) -> Job:
        parsed = await self._read(request)
        pipeline = request_pipeline(self.pipeline, parsed.overrides)
        if not self.slots.try_take():
            raise StarletteHTTPException(
                429, f"busy: {self.limits.max_jobs} jobs are running, the server's limit; retry shortly",
                headers={"Retry-After": "1"})
        try:
            job = await run_in_threadpool(self._run, pipeline, parsed)
        finally:
            self.slots.give_back()
        self.store.add(job)
        return job

    async def _read(self, request: Request) -> DiffRequest:
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            raise StarletteHTTPException(
                415, "send multipart/form-data with two image files in the fields 'left' and 'right'")
        form = await request.form(max_files=len(SIDES) + 1, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=MAX_FIELD_BYTES)
        try:
            return await self._collect(form)
        finally:
            await form.close()  # spooled upload files are deleted here

    async def _collect(self, form: FormData) -> DiffRequest:
        uploads: dict[str, Upload] = {}
        fields: dict[str, str] = {}
        json_options: dict[str, Any] = {}
        ignore: IgnoreSpec | None = None
        seen: set[str] = set()
        for key, value in form.multi_items():
            if key in seen:  # never last-wins: the client meant one of them, and we cannot tell which
                raise UsageError(f"field '{shown(key)}' is given twice")
            seen.add(key)
            if key in SIDES:
                if not isinstance(value, UploadFile):
                    raise UsageError(f"field '{key}' must be a file part (e.g. curl -F {key}=@image.png)")
                uploads[key] = await self._upload(key, value)
            elif key == OPTIONS_FIELD:
                text = await value.read(MAX_FIELD_BYTES + 1) if isinstance(value, UploadFile) else value
                json_options = parse_json_options(text)
            elif key == IGNORE_FIELD and not isinstance(value, UploadFile):
                ignore = parse_ignore(value)
            elif isinstance(value, UploadFile):
                raise UsageError(f"field '{shown(key)}' is a file; only 'left' and 'right' take files"
                                 if not self.options.knows(key) else f"option '{key}' must be a text field")
            else:
                fields[key] = value
        missing = [s for s in SIDES if s not in uploads]
        if missing:
            raise UsageError(f"missing file field {' and '.join(repr(m) for m in missing)}: send two images "
                             "as multipart fields 'left' and 'right'")
        if IGNORE_FIELD in json_options:
            if ignore is not None:
                raise UsageError("option 'ignore' is given both as a field and in 'options'")
            ignore = parse_ignore(json_options.pop(IGNORE_FIELD), from_json=True)
        overrides = self.options.parse(fields)
        from_json = self.options.parse(json_options, from_json=True)
        twice = sorted(set(overrides) & set(from_json))
        if twice:
            raise UsageError(f"option {twice[0]!r} is given both as a field and in 'options'")
        return DiffRequest(uploads, {**overrides, **from_json}, ignore)

    async def _upload(self, side: str, file: UploadFile) -> Upload:
        name = display_name(side, file.filename)
        data = await file.read(self.limits.max_upload_bytes + 1)
        check_upload(data, name, self.limits.max_upload_bytes)
        return Upload(side, data, name, client_file_name(file.filename))

    @staticmethod
    def _run(pipeline: Pipeline, request: DiffRequest) -> Job:
        """In a worker thread: decode both uploads (pixel cap from the header first), then the pipeline."""
        t0 = time.perf_counter()
        left, right = (decode_image_bytes(request.uploads[s].data, request.uploads[s].name, pipeline.max_pixels)
                       for s in SIDES)
        decode_ms = (time.perf_counter() - t0) * 1e3
        job_id = new_job_id()
        processed = pipeline.process(left, right, id=job_id, ignore=request.ignore)
        result = processed.result.replace(left=request.uploads["left"].file_name,
                                          right=request.uploads["right"].file_name)
        # the pipeline's own "load" only converts the decoded arrays; reading the uploads is timed here
        result = result.with_timing("decode_uploads", decode_ms)
        return Job(job_id, Processed(result, processed.images))


def job_payload(job: Job, limits: WebLimits) -> dict:
    """The result JSON of the contract, plus where its pictures are for the next ``keep_s`` seconds."""
    base = f"/v1/diff/{job.id}"
    left_s = max(0.0, limits.keep_s - (time.monotonic() - job.created))
    return {**job.processed.result.to_dict(), "job": {
        "id": job.id, "expires_in_s": round(left_s, 1),
        "links": {"result": base, "annotated_png": f"{base}/annotated.png", "mask_png": f"{base}/mask.png",
                  "img_diff": f"{base}/img-diff.json"},
        "has_mask": job.processed.images.change_mask is not None,
        "right_boxes": job.right_boxes()}}
