"""Independent pipeline steps on a second core: the two registries load and standardise at once,
and the worker that loaded the origin also blocks and compares it with itself (the first half of
its within-file linkage: reconcile.linkage.block_and_compare), which needs no model yet.

A spawned process (not a fork), so it behaves the same on Windows, where the users are, as on
Linux. Only worth it for large files: starting a Python with pandas costs about a second, and
the loaded side comes back pickled (about a quarter of its loading time).
"""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

# both files at least this large (bytes) before the origin loads in a second process
PARALLEL_LOAD_MIN_BYTES = 16 << 20


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # Windows, macOS
        return os.cpu_count() or 1


def use_second_core(*paths: str | Path, min_bytes: int | None = None) -> bool:
    """Whether loading ``paths`` side by side pays: a second core, and every file at least
    ``min_bytes`` (default PARALLEL_LOAD_MIN_BYTES) large."""
    min_bytes = PARALLEL_LOAD_MIN_BYTES if min_bytes is None else min_bytes
    if _cores() < 2 or os.environ.get("RECONCILE_WORKERS", "") == "1":
        return False
    try:
        return all(Path(p).stat().st_size >= min_bytes for p in paths)
    except OSError:   # a missing file: the ordinary path reports it
        return False


def _load_and_block(name: str, path: str, options: dict, within: tuple | None):
    """The worker's job: load one side; with ``within`` = (comparators, passes, block cap), also
    block and compare it with itself. Returns (Side, Blocked or None)."""
    from reconcile.linkage import block_and_compare
    from reconcile.match import load_side

    side = load_side(name, path, options)
    if within is None or len(side.std) < 2:
        return side, None
    comps, passes, cap = within
    blocked = block_and_compare(side.std, None, comps, passes=passes, block_cap=cap)
    blocked.arrays = None   # the frame's own columns: not worth sending back
    return side, blocked


def load_sides(origin_path: str | Path, dest_path: str | Path, origin_opts: Mapping[str, Any],
               dest_opts: Mapping[str, Any], min_bytes: int | None = None,
               within: tuple[Sequence[Any], Sequence[Any], int] | None = None):
    """(origin Side, dest Side, origin's Blocked or None) as reconcile.match.load_side makes
    them; the origin in a second process while this one loads the destination, when both files
    are large. ``within`` = (comparators, passes, block cap): that process then also blocks and
    compares the origin with itself (reconcile.linkage.block_and_compare), for ``link(blocked=)``.

    Whatever goes wrong in the second process (a bad file, a worker that cannot start, a
    comparator that cannot be sent) is done again here, so the error a user sees is the one the
    ordinary path gives. A failure or Ctrl-C here ends the worker."""
    from reconcile.match import load_side

    if not use_second_core(origin_path, dest_path, min_bytes=min_bytes):
        return load_side("origin", origin_path, origin_opts), load_side("dest", dest_path, dest_opts), None
    from reconcile.i18n import get_lang, set_lang

    # the worker starts afresh: it speaks the language this run speaks (rejected rows' reasons)
    pool = multiprocessing.get_context("spawn").Pool(1, initializer=set_lang, initargs=(get_lang(),))
    try:
        pending = pool.apply_async(_load_and_block, ("origin", str(origin_path), dict(origin_opts), within))
        dest = load_side("dest", dest_path, dest_opts)
        try:
            origin, blocked = pending.get()
        except Exception:   # noqa: BLE001 - redone in this process, which raises it properly
            origin, blocked = None, None
    finally:
        pool.terminate()
        pool.join()
    if origin is None:
        origin = load_side("origin", origin_path, origin_opts)
    return origin, dest, blocked
