"""Finished jobs, kept in memory for a short time so their pictures can be fetched: each expires after
``keep_s`` seconds, and the oldest go first once the kept pixels pass ``keep_bytes`` (memory stays flat under
load). Nothing is written to disk. Pictures are drawn on first request, by the same code as ``run --out``, and
cached within that same budget."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from imgdiff_rt.annotate import right_frame_box, side_by_side, with_footer
from imgdiff_rt.imageio import encode_png
from imgdiff_rt.writers.imgdiff_format import imgdiff_records
from imgdiff_rt.pipeline import Processed
from imgdiff_rt.weights_report import footer_label

JOB_ID_PATTERN = r"[0-9a-f]{16}"


def new_job_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Job:
    id: str
    processed: Processed
    created: float = field(default_factory=time.monotonic)
    pictures: dict[str, bytes] = field(default_factory=dict)  # changed only under the store's lock
    store: "JobStore | None" = field(default=None, repr=False)  # set when kept: it caches the pictures
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        im = self.processed.images
        arrays = {id(a): a for a in (im.left, im.right, im.right_unwarped, im.valid, im.change_mask, im.ignore)
                  if a is not None}  # right and right_unwarped are one array unless registered or resized
        self.pixel_bytes = sum(a.nbytes for a in arrays.values())

    @property
    def homography(self) -> np.ndarray | None:
        a = self.processed.images.alignment
        return a.matrix if a is not None and a.method != "none" else None

    def nbytes(self) -> int:
        return self.pixel_bytes + sum(len(b) for b in list(self.pictures.values()))

    def right_boxes(self) -> list[list[int]]:
        """Each region's box in the right image as uploaded (differs from the left box once registered)."""
        size = self.processed.result.size
        return [list(right_frame_box(r.bbox, self.homography, size)) for r in self.processed.result.regions]

    def _picture(self, key: str, draw) -> bytes:
        with self._lock:  # two fetches of the same picture draw it once
            cached = self.pictures.get(key)
            if cached is not None:
                if self.store is not None:
                    self.store.touch(self, key)
                return cached
            data = encode_png(draw())
            if self.store is not None:  # kept only while the store's budget allows (else drawn again)
                self.store.keep_picture(self, key, data)
            return data

    def annotated_png(self) -> bytes:
        """As `run --out` draws it: random or tiny weights are said in a footer (the picture gets shared alone)."""
        im, result = self.processed.images, self.processed.result
        return self._picture("annotated", lambda: with_footer(
            side_by_side(im.left, im.right_unwarped, result.regions, self.homography, ignore=im.ignore),
            footer_label(result.weights)))

    def mask_png(self) -> bytes | None:
        mask = self.processed.images.change_mask
        if mask is None:
            return None
        return self._picture("mask", lambda: np.where(mask, 255, 0).astype(np.uint8))

    def region_png(self, region_id: int) -> bytes | None:
        """The Img-Diff record's picture of one region (side by side, that region boxed, not numbered)."""
        found = [r for r in self.processed.result.regions if r.id == region_id]
        if not found:
            return None
        im = self.processed.images
        return self._picture(f"region-{region_id}", lambda: side_by_side(
            im.left, im.right_unwarped, found, self.homography, numbered=False))

    def imgdiff_records(self) -> list[dict]:
        return imgdiff_records(self.processed.result, self.id)


class JobStore:
    """Results by id. Their pixels and their drawn pictures count against ``keep_bytes``: beyond it cached
    pictures go first, least recently fetched first (they can be drawn again), then the oldest results. The
    newest result is always kept whole, so its links work even when it alone is over the budget."""

    def __init__(self, keep_s: float, keep_bytes: int):
        self.keep_s, self.keep_bytes = keep_s, keep_bytes
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._pictures: OrderedDict[tuple[str, str], int] = OrderedDict()  # (job id, key) -> bytes, LRU first
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            job.store = self
            self._jobs[job.id] = job
            self._evict()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            self._evict()
            return self._jobs.get(job_id)

    def keep_picture(self, job: Job, key: str, data: bytes) -> None:
        with self._lock:
            if self._jobs.get(job.id) is not job:
                return  # dropped while its picture was drawn
            job.pictures[key] = data
            self._pictures[(job.id, key)] = len(data)
            self._evict()

    def touch(self, job: Job, key: str) -> None:
        with self._lock:
            if (job.id, key) in self._pictures:
                self._pictures.move_to_end((job.id, key))

    def stats(self) -> dict:
        with self._lock:
            self._evict()
            return {"jobs_kept": len(self._jobs), "bytes_kept": self._total()}

    def _total(self) -> int:
        return sum(j.pixel_bytes for j in self._jobs.values()) + sum(self._pictures.values())

    def _drop_job(self, job: Job) -> None:
        del self._jobs[job.id]
        for key in list(job.pictures):
            self._pictures.pop((job.id, key), None)
        job.pictures.clear()

    def _evict(self) -> None:
        now = time.monotonic()
        while self._jobs and now - next(iter(self._jobs.values())).created > self.keep_s:
            self._drop_job(next(iter(self._jobs.values())))
        total = self._total()
        while total > self.keep_bytes and self._pictures:
            (job_id, key), size = self._pictures.popitem(last=False)
            self._jobs[job_id].pictures.pop(key, None)
            total -= size
        while total > self.keep_bytes and len(self._jobs) > 1:
            oldest = next(iter(self._jobs.values()))
            total -= oldest.pixel_bytes
            self._drop_job(oldest)
