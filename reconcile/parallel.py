"""Independent pipeline steps on a second core: the two registries load and standardise at once,
and the worker that loaded the larger one then blocks and compares it with itself (the first half
of its within-file linkage: reconcile.linkage.block_and_compare, which needs no model) while this
process links the two registries.

The worker is a new Python (``python -m reconcile.parallel``) that reads its job from its stdin and
writes the result to its stdout, both pickled: it behaves the same on Windows, where the users
are, as on Linux, and unlike multiprocessing's spawn it never runs the caller's main script again
(a script without an ``if __name__ == "__main__"`` guard would load the registries once more in
the worker, and again in every replacement). Only worth it for large files: starting a Python
with pandas costs about a second, and the loaded side comes back pickled.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

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


class Sides:
    """Both loaded registries, and each one's within-file blocking and comparison where it was
    done beforehand (``blocked(name)``). The larger registry is loaded in a second process, which
    then blocks and compares it with itself while this process goes on (the cross-registry
    linkage; ``blocked`` waits for that result), and then builds its side's `records` rows into a
    scratch SQLite file for the report to copy (``prepared_records``, which the report may wait
    for while it writes the rest; this process builds its own side's while the worker is still
    loading, time it would otherwise spend waiting). ``close()`` (or ``with``) ends the worker,
    once the report is written; ``remove_files()`` then deletes the scratch files."""

    def __init__(self, origin, dest, worker: subprocess.Popen | None = None, worker_side: str | None = None,
                 steps: Sequence[str] = (), reload: tuple[str, Mapping[str, Any]] | None = None,
                 scratch: Path | None = None, scratch_dir: str | Path | None = None) -> None:
        self.origin, self.dest = origin, dest
        self._blocked: dict = {}
        self._worker, self._worker_side = worker, worker_side
        self._steps = list(steps)     # what the worker sends after the side, in order: "counts", "within", "records"
        self._got: dict[str, Any] = {}
        self._prepared: dict[str, Any] = {}   # records built here while the worker was still loading
        self._counts: dict[str, Any] = {}     # term counts (reconcile.scoring.term_counts) per side
        self._reload = reload         # (path, options) of the worker's file
        self._scratch = [scratch] if scratch is not None else []
        self._scratch_dir = scratch.parent if scratch is not None else scratch_dir
        self._base: Path | None = None   # where the worker builds the report base, when asked
        self._copy: Path | None = None   # and where the run is written meanwhile (report_copy)
        self.timings: dict[str, float] = {}

    def _new_scratch(self) -> Path | None:
        """A new scratch file for `records` rows built in this process (deleted by
        ``remove_files``); None without a scratch directory or when none can be made."""
        if self._scratch_dir is None:
            return None
        path = _scratch_file(self._scratch_dir)
        if path is not None:
            self._scratch.append(path)
        return path

    def _take(self, step: str):
        """The worker's result of ``step``, reading its results in the order it sends them; None
        when it was not asked, or the worker failed (then it is ended)."""
        while step not in self._got and self._steps and self._worker is not None:
            got = _read(self._worker)
            self._got[self._steps.pop(0)] = got
            if got is None:   # failed: nothing more comes
                self.close()
        if not self._steps:
            self.close()
        return self._got.get(step)

    def blocked(self, name: str):
        """The Blocked of side ``name`` with itself, or None (then link() does it here). For the
        worker's side this waits for the worker, and is None when it failed in any way."""
        asked = "within" in self._steps or "within" in self._got
        if name == self._worker_side and name not in self._blocked and asked:
            t0 = time.perf_counter()
            got = self._take("within")
            self.timings[f"waited_for_{name}_within"] = time.perf_counter() - t0
            if got is not None:
                blocked, fingerprints = got
                self._blocked[name] = blocked
                self.timings[f"within_{name}_in_worker"] = sum(blocked.timings.values())
                side = self._side(name)
                if side is not None and side._fingerprints is None and len(fingerprints) == len(side.std):
                    side._fingerprints = fingerprints
        return self._blocked.get(name)

    def forget_blocked(self) -> None:
        """Let go of both sides' within-file Blocked (their linkages are done with)."""
        self._blocked.clear()

    def term_counts(self, name: str):
        """Side ``name``'s reconcile.scoring.term_counts: counted beside the load (this process's
        side while the worker loads, the worker's right after it sent its side), else here. Read
        once: not held afterwards (a count per distinct name, for the rest of the run)."""
        got = self._counts.pop(name, None)
        if got is None and name == self._worker_side:
            got = self._take("counts")
            self._got.pop("counts", None)
        if got is None:
            from reconcile.scoring import term_counts

            got = term_counts(self._side(name).std)
        return got

    def prepared_records(self, name: str, ahead_min: int | None = None):
        """Side ``name``'s `records` rows as reconcile.report.CopiedRows, built beforehand, or None.
        The worker's side: when the worker built them (else its raw rows, which the worker kept,
        are read here again). This process's side: built here into a scratch file of its own while
        the worker was loading, when the worker builds its side's (load_sides).
        Without that, a side of ``ahead_min`` records or more gets them built here too ("ahead")."""
        if name == self._worker_side:
            side = self._side(name)
            if "records" in self._steps and self._worker is not None and side is not None \
                    and side._fingerprints is not None:
                # still being built there: the report waits for them when it copies them (last);
                # the fingerprints came with the within-file comparison
                return _copied_rows(self._scratch[0], ready=partial(self._await_records, name))
            copied = self._worker_records(name)
            if copied is not None:
                return copied
        elif name in self._prepared:
            return self._prepared.pop(name)
        side = self._side(name)
        if ahead_min is None or side is None or len(side.std) < ahead_min:
            return None
        return self._records_here(name, "ahead")

    def _records_here(self, name: str, label: str, side=None, base: Path | None = None):
        """Side ``name``'s (or ``side``'s) `records` rows built in this process into a new scratch
        file (or into ``base``, as a report base's first rows: ReportBase), or None when none can
        be made; timed as ``records_<name>_<label>``."""
        from reconcile.match import record_chunks, write_side_records
        from reconcile.report import ReportBase, write_copied_rows

        path = self._new_scratch() if base is None else base
        if path is None:
            return None
        t0 = time.perf_counter()
        side = side if side is not None else self._side(name)
        if base is None:
            copied = write_side_records(side, path)
        else:   # (copied from there unless the worker makes it a report base: then only its rows)
            copied = replace(write_copied_rows(base, "records", record_chunks(side), run_id=ReportBase.run_id),
                             source=name)
        self.timings[f"records_{name}_{label}"] = time.perf_counter() - t0
        return copied

    def _await_records(self, name: str) -> None:
        """Wait for the worker's records of side ``name`` (into its scratch file); when it cannot
        deliver them, build them into that file here, from the whole registry loaded again."""
        if self._take_records(name) is not None:
            return
        from reconcile.match import load_side, write_side_records

        t0 = time.perf_counter()
        side, full = self._side(name), load_side(name, *self._reload)
        full._fingerprints = side._fingerprints if side is not None else None
        self._scratch[0].unlink(missing_ok=True)   # what the worker left of it (no journal): anew
        write_side_records(full, self._scratch[0])
        self.timings[f"records_{name}_after_worker"] = time.perf_counter() - t0

    def _take_records(self, name: str):
        """The worker's records result for side ``name`` (CopiedRows), waited for; or None."""
        if "records" in self._steps:
            t0 = time.perf_counter()
            got = self._take("records")
            self.timings[f"waited_for_{name}_records"] = time.perf_counter() - t0
        else:
            got = self._got.get("records")
        if got is None:
            return None
        copied, seconds, fingerprints = got
        self.timings[f"records_{name}_in_worker"] = seconds
        from reconcile.report import ReportBase

        if isinstance(copied, ReportBase):   # (its indexes built there too)
            self.timings["record_indexes_in_worker"] = copied.index_seconds
        side = self._side(name)
        if side is not None and side._fingerprints is None and fingerprints is not None \
                and len(fingerprints) == len(side.std):
            side._fingerprints = fingerprints
        return copied

    def _worker_records(self, name: str):
        """The worker's records result for its side ``name``, or None; then the side's raw rows,
        which the worker kept, are read here again (the whole registry, when it was sent with
        only the linkage's columns)."""
        copied = self._take_records(name)
        if copied is not None:
            return copied
        side = self._side(name)
        if side is not None and self._reload is not None and side.linking_only:
            from reconcile.match import load_side

            # sent without the fields only the records read: the whole registry again (its rows
            # in the same order, so what was linked on the part stays right)
            full = load_side(name, *self._reload)
            side.std, side.loaded, side.linking_only = full.std, full.loaded, False
        elif side is not None and side.loaded.raw is None and self._reload is not None:
            from reconcile.loading import read_registry

            side.loaded.raw = read_registry(self._reload[0], **self._reload[1]).raw
        return None

    @property
    def report_base_asked(self) -> bool:
        """Whether the worker was asked to finish a report base (load_sides' ``report_base``)."""
        return self._base is not None and self._side(self._worker_side) is not None

    def report_copy(self) -> Path | None:
        """The scratch file (deleted by ``remove_files``) for the run to be written into while the
        worker finishes the report base (reconcile.report.write_run_beside_base), or None when no
        base was asked for. Made with the base: a base asked for always has its copy."""
        return self._copy if self.report_base_asked else None

    def report_base(self):
        """The reconcile.report.ReportBase the worker built (load_sides' ``report_base``), waited
        for; None when it built none (then ``prepared_records`` gives the rows as without it)."""
        from reconcile.report import ReportBase

        if not self.report_base_asked:
            return None
        copied = self._take_records(self._worker_side)
        return copied if isinstance(copied, ReportBase) else None

    @property
    def worker_side(self) -> str | None:
        """The side the worker loaded ('origin' | 'dest'), None without a worker."""
        return self._worker_side

    def _side(self, name: str):
        return self.origin if name == "origin" else self.dest

    def close(self) -> None:
        """End the worker (if any) and let go of its pipe."""
        proc, self._worker = self._worker, None
        if proc is None:
            return
        _end(proc)

    def remove_files(self) -> None:
        """Delete the scratch files (personal data: never left behind on purpose). By then the
        worker has ended and the report has detached them; an error here (a file another program
        holds open, on Windows) must not hide the run's own error, so it is not raised."""
        for path in self._scratch:
            for file in _with_sqlite_files(path):
                try:
                    file.unlink(missing_ok=True)
                except OSError:
                    pass

    def __enter__(self) -> "Sides":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _copied_rows(path: Path, ready):
    from reconcile.report import CopiedRows

    return CopiedRows(path, ready=ready)


def _block(side, within: tuple | None):
    """``side`` blocked and compared with itself (reconcile.linkage.block_and_compare), or None.
    ``within``: (comparators, passes, block cap[, u sample]); with a u sample size its u
    probabilities too (reconcile.linkage.estimate_u: the within-file linkage's, which need no
    model), off the main process's path."""
    from reconcile.linkage import block_and_compare, estimate_u

    if within is None or len(side.std) < 2:
        return None
    comps, passes, cap, *rest = within
    blocked = block_and_compare(side.std, None, comps, passes=passes, block_cap=cap)
    if rest and rest[0] is not None and blocked.arrays is not None:
        blocked.u = estimate_u(blocked.arrays[0], None, len(side.std), None, comps, rest[0])
        blocked.u_sample = rest[0]
    return blocked


def load_sides(origin_path: str | Path, dest_path: str | Path, origin_opts: Mapping[str, Any],
               dest_opts: Mapping[str, Any], min_bytes: int | None = None,
               within: tuple[Sequence[Any], Sequence[Any], int] | None = None,
               scratch_dir: str | Path | None = None, send_only: Collection[str] | None = None,
               report_base: bool = False) -> Sides:
    """Both sides as reconcile.match.load_side makes them. When both files are large, the larger
    one loads in a second process while this one loads the smaller; with ``within`` =
    (comparators, passes, block cap) each process then blocks and compares its side with itself
    (reconcile.linkage.block_and_compare, for ``link(blocked=)``): this one at once, the worker
    after it has handed its side over, while this process links the two registries. With
    ``scratch_dir`` the worker then builds its side's `records` rows into a scratch SQLite file
    there (``Sides.prepared_records``; the caller calls ``remove_files()`` when done with it), and
    keeps the raw rows those need instead of sending them; this process builds its own side's
    while it waits for the larger file. With ``send_only`` (column names: reconcile.match's
    linking_columns) as well, the worker sends its side with only those columns and ``k_filled``
    (a ``linking_only`` Side): what only the records read stays there (at 1,000,000 persons about
    0.4 GB not held twice); the fingerprints, of whole records, come from there too (with the
    within-file comparison and with the records). The worker's records can then be copied into
    the report last, while they are still being built (a pending CopiedRows). With
    ``report_base`` as well (the report has no run yet) and the origin loaded here, this process
    writes the origin's rows as the first rows of a new report, and the worker adds its side's
    and builds the indexes (``Sides.report_base``): what the report stage, last, would do, done
    beside this process's outcomes.

    Whatever goes wrong in the second process (a bad file, a worker that cannot start, a
    comparator that cannot be sent) is done again here, so the error a user sees is the one the
    ordinary path gives. A failure or Ctrl-C here ends the worker."""
    from reconcile.errors import ReconcileError
    from reconcile.match import load_side

    paths = {"origin": origin_path, "dest": dest_path}
    opts = {"origin": origin_opts, "dest": dest_opts}
    if scratch_dir is not None:   # (what a run killed outright left there)
        remove_stale_scratch(scratch_dir)
    if not use_second_core(origin_path, dest_path, min_bytes=min_bytes):
        return Sides(load_side("origin", origin_path, origin_opts), load_side("dest", dest_path, dest_opts),
                     scratch_dir=scratch_dir)
    from reconcile.i18n import get_lang

    # the worker takes the larger file: its load is the longer, and its within-file comparison
    # (the larger too) then runs beside this process's cross-registry linkage
    big = "dest" if Path(dest_path).stat().st_size >= Path(origin_path).stat().st_size else "origin"
    small = "origin" if big == "dest" else "dest"
    scratch = _scratch_file(scratch_dir) if scratch_dir is not None else None
    steps = (["within"] if within is not None else []) + (["records"] if scratch is not None else [])
    # the worker goes on after its side: it counts its side's term frequencies first
    steps = (["counts"] if steps else []) + steps
    # the report base starts with this process's side's records: the origin's, which go first;
    # the run is written into a copy of the report meanwhile (both files made now or neither)
    base = copy = None
    if scratch is not None and report_base and small == "origin":
        base, copy = _scratch_file(scratch_dir), _scratch_file(scratch_dir)
        if base is None or copy is None:
            for made in (base, copy):
                if made is not None:
                    made.unlink(missing_ok=True)
            base = copy = None
    # the worker starts afresh: it speaks the language this run speaks (rejected rows' reasons)
    worker = _start_worker((get_lang(), big, str(paths[big]), dict(opts[big]), within,
                            None if scratch is None else str(scratch),
                            None if scratch is None or send_only is None else frozenset(send_only),
                            None if base is None else str(base)))
    sides = Sides(None, None, worker=worker, worker_side=big, steps=steps,
                  reload=(str(paths[big]), dict(opts[big])), scratch=scratch)
    if base is not None:
        sides._scratch += [base, copy]
        sides._base, sides._copy = base, copy
    early: list = []   # the worker's side result, when it ended before it was waited for

    def worker_failed_early() -> bool:
        """Whether the worker has ended already without a side (a bad file: it sends its error
        and ends): then its result is read now and this process's next steps are skipped (the
        error is raised where the side is taken, below)."""
        if not early and worker is not None and worker.poll() is not None:
            early.append(_read_side(worker))
        return bool(early) and early[0][0] is None

    try:
        try:
            mine = load_side(small, paths[small], opts[small])
        except ReconcileError:
            if small == "dest":
                # the ordinary path reads the origin first: when it is bad too, its error is the one
                # shown (waited for: the worker is still reading it)
                _, error = _read_side(worker)
                if error is not None:
                    raise error from None
            raise
        if not worker_failed_early():
            t0 = time.perf_counter()
            mine_blocked = _block(mine, within)
            if mine_blocked is not None:
                sides._blocked[small] = mine_blocked
                sides.timings[f"within_{small}_beside_load"] = time.perf_counter() - t0
        if not worker_failed_early():
            mine.fingerprints   # (the report's; computed now, while the larger file is still loading)
            from reconcile.scoring import term_counts

            sides._counts[small] = term_counts(mine.std)   # (and the term frequencies' share of it)
        if scratch is not None and not worker_failed_early():
            # and this side's `records` rows, which the worker builds for its side
            copied = sides._records_here(small, "beside_load", side=mine, base=base)
            if copied is not None:
                sides._prepared[small] = copied
                mine.loaded.raw = None   # only the records read it
                if send_only is not None:
                    # and the fields only the records and the fingerprints read (both done): this
                    # side keeps the linkage's columns, as the worker sends its side (at 1,000,000
                    # persons the origin's addresses, raw names and numbers, dates as written)
                    from reconcile.match import with_filled

                    mine.std = with_filled(mine.std, send_only)
        if base is not None:   # (the worker waits for this before its records: told in every case)
            _tell_worker(worker, small in sides._prepared)
            if small not in sides._prepared:
                sides._base = None
        t0 = time.perf_counter()
        theirs, error = early[0] if early else _read_side(worker)
        sides.timings[f"waited_for_{big}_load"] = time.perf_counter() - t0
        if error is not None:   # its file is bad: the error the ordinary path raises, pickled there
            raise error
        if theirs is None:   # redone in this process, which raises a bad file's error properly
            sides.close()
            theirs = load_side(big, paths[big], opts[big])
    except BaseException:
        sides.close()
        sides.remove_files()
        raise
    sides.origin, sides.dest = (mine, theirs) if small == "origin" else (theirs, mine)
    if not steps:
        sides.close()
    return sides


SCRATCH_PREFIX, SCRATCH_SUFFIX = ".reconcile-", ".records.tmp"
# the files SQLite keeps beside a database while it writes: a process killed in a transaction
# leaves its rollback journal (the pages it changed: personal data too)
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def _with_sqlite_files(path: Path) -> list[Path]:
    """``path`` and the files SQLite may keep beside it (SQLITE_SIDE_FILES)."""
    return [path] + [path.with_name(path.name + end) for end in SQLITE_SIDE_FILES]


# scratch files whose process cannot be asked (an older version's, without the process id in the
# name, or another computer's in a shared folder) are deleted after this long
OLD_SCRATCH_AGE_S = 24 * 3600


def _host_tag() -> str:
    """Eight hex digits naming this computer in scratch file names: a process id means nothing
    on another computer writing into the same shared folder."""
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _scratch_file(directory: str | Path) -> Path | None:
    """A new empty file in ``directory`` for `records` rows (None when none can be made); its
    name carries this process's id and this computer's tag, for remove_stale_scratch."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{_host_tag()}-", suffix=SCRATCH_SUFFIX,
                                    dir=str(directory))
    except OSError:
        return None
    os.close(fd)
    return Path(name)


def remove_stale_scratch(directory: str | Path) -> list[Path]:
    """Delete the scratch files in ``directory`` that a run killed outright left (SIGKILL, a
    power cut: nothing of it could clean up), i.e. this computer's whose process no longer runs,
    and those of another computer or an older version more than OLD_SCRATCH_AGE_S old. They hold
    personal data. Returns the files deleted; a file that cannot be deleted is left (another
    program holds it)."""
    gone: list[Path] = []
    try:
        found = [p for end in ("",) + SQLITE_SIDE_FILES
                 for p in Path(directory).glob(f"{SCRATCH_PREFIX}*{SCRATCH_SUFFIX}{end}")]
    except OSError:
        return gone
    here = _host_tag()
    for path in found:
        pid, host, rest = (path.name[len(SCRATCH_PREFIX):].split("-", 2) + ["", ""])[:3]
        try:
            if rest and pid.isdigit() and host == here:
                stale = not _process_running(int(pid))
            else:
                stale = time.time() - path.stat().st_mtime > OLD_SCRATCH_AGE_S
            if stale:
                path.unlink()
                gone.append(path)
        except OSError:
            pass
    return gone


def _process_running(pid: int) -> bool:
    """Whether process ``pid`` exists (True when that cannot be told: the file is kept)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":   # os.kill(pid, 0) would end the process there
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)   # type: ignore[attr-defined]
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.WaitForSingleObject.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
        handle = kernel32.OpenProcess(0x00100000 | 0x1000, False, pid)   # SYNCHRONIZE | QUERY_LIMITED
        if not handle:
            return ctypes.get_last_error() != 87   # ERROR_INVALID_PARAMETER: no such process
        try:
            return kernel32.WaitForSingleObject(handle, 0) == 0x102   # WAIT_TIMEOUT: still running
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # (PermissionError: another user's process)
        return True
    return True


def _start_worker(job: tuple) -> subprocess.Popen | None:
    """A new Python running this module's ``_worker_main`` with ``job``; None if it cannot start.
    It imports what this process imports (the same sys.path)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "reconcile.parallel"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdin is not None
        # kept open, written to once more at most (_tell_worker): the worker ends when it closes
        # (this process ended, even killed: _Caller), instead of going on alone with the registry
        _send_framed(proc.stdin, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, pickle.PicklingError, AttributeError, TypeError):
        return None
    return proc


def _send_framed(pipe, data: bytes) -> None:
    """``data`` with its length before it: the worker reads its stdin unbuffered (the thread
    watching it must see every byte after the job: _Caller)."""
    pipe.write(len(data).to_bytes(8, "little") + data)
    pipe.flush()


def _read_exactly(fd: int, n: int) -> bytes:
    """``n`` bytes from ``fd`` (a pipe returns what has come so far); EOFError when it closes first."""
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_framed(fd: int) -> bytes:
    return _read_exactly(fd, int.from_bytes(_read_exactly(fd, 8), "little"))


def _tell_worker(proc: subprocess.Popen | None, base_started: bool) -> None:
    """Tell the worker whether the report base holds this process's side's `records` rows (for it
    to finish: load_sides' ``report_base``). A worker that has ended is not told."""
    if proc is None or proc.stdin is None:
        return
    try:
        _send_framed(proc.stdin, b"1" if base_started else b"0")
    except (OSError, ValueError):   # (BrokenPipeError; a closed pipe)
        pass


def _end(proc: subprocess.Popen) -> None:
    """End the worker (killed if still running) and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:   # (its stdin: unwritten data to a killed worker)
                pass
    proc.wait()


def _read(proc: subprocess.Popen | None):
    """The worker's next result, or None when it failed in any way (then it is ended)."""
    return _read_side(proc)[0]


def _read_side(proc: subprocess.Popen | None) -> tuple[Any, Any]:
    """(the worker's next result, None), or (None, the ReconcileError it sent: a bad file), or
    (None, None) when it failed otherwise; after a failure the worker is ended."""
    from reconcile.packing import PendingFrame

    if proc is None or proc.stdout is None or proc.stdout.closed:
        return None, None
    try:
        ok, payload = pickle.load(proc.stdout)
        std = getattr(payload, "std", None) if ok else None
        if isinstance(std, PendingFrame):   # the loaded side: its columns that follow the pickle
            payload.std = std.complete(proc.stdout)
    except Exception:   # noqa: BLE001 - the worker died or wrote nothing usable
        ok, payload = False, None
    if not ok:
        _end(proc)
        from reconcile.errors import ReconcileError

        return None, (payload if isinstance(payload, ReconcileError) else None)
    return payload, None


def _error_result(exc: BaseException) -> tuple[bool, Any]:
    """(False, the error) when it pickles, else (False, None) (the caller redoes the job)."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:   # noqa: BLE001
        return (False, None)
    return (False, exc)


class _Caller:
    """The worker's stdin after the job, watched by a thread that ends this worker once it closes:
    the caller keeps it open, so it closes when the caller ends, even killed (SIGKILL, the task
    manager). Without it the worker would go on alone with the registry, and write its records
    into a scratch file nobody deletes (remove_stale_scratch deletes them at the next run).
    The caller writes one message to it when it builds a report base (_tell_worker)."""

    def __init__(self, fd: int) -> None:
        import threading

        self._fd = fd
        self._told = threading.Event()
        self._base_started = False
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        # os.read, not the buffered file: a thread blocked inside the buffered file holds its
        # lock, and Python's shutdown then aborts ("could not acquire lock ... at interpreter
        # shutdown") with a fatal error on the terminal
        try:
            self._base_started = _read_framed(self._fd) == b"1"
            self._told.set()
            while os.read(self._fd, 65536):
                pass
        except (OSError, EOFError):
            pass
        os._exit(1)

    def base_started(self) -> bool:
        """Whether the report base holds the caller's side's `records` rows (waits until it says)."""
        self._told.wait()
        return self._base_started


def _worker_main() -> None:
    """``python -m reconcile.parallel``: one job from stdin; to stdout (pickled) the loaded side,
    then, when the job asks for them, that side blocked and compared with itself and its
    `records` rows built into a scratch file."""
    from reconcile.errors import ReconcileError
    from reconcile.i18n import set_lang

    out = sys.stdout.buffer
    sys.stdout = sys.stderr   # whatever a library prints must not corrupt the results

    def send(result: tuple) -> None:
        pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        from reconcile.match import load_side

        fd = sys.stdin.fileno()
        lang, name, path, options, within, scratch, send_only, base = pickle.loads(_read_framed(fd))
        caller = _Caller(fd)
        set_lang(lang)
        side = load_side(name, path, options)
    except ReconcileError as exc:   # a bad file: the caller raises this very error, at once
        send(_error_result(exc))
        return
    except BaseException:   # noqa: BLE001 - the caller redoes the job and reports the error
        send((False, None))
        return
    raw = side.loaded.raw
    if scratch is not None:
        side.loaded.raw = None   # only the records need it, and those are built here
    # the side's nearly distinct text columns follow its pickle (reconcile.packing)
    from reconcile.packing import PackedFrame

    sent = side if send_only is None else _linking_side(side, send_only)
    packed = PackedFrame(sent.std)
    send((True, replace(sent, std=packed)))
    del sent
    packed.write_trailing(out)
    out.flush()
    del packed
    side.loaded.raw = raw
    # the results after the side go out in order from a thread: a write waits for the caller to
    # read, and the caller reads each only when it needs it (the term counts once its cross pairs
    # are compared, the within-file result after that), while this process goes on
    sender = _Sender(out)
    try:
        if within is not None or scratch is not None:   # (the caller's "counts" step)
            sender.put(_counts_result(side))
        within_result = None if within is None else _within_result(side, within)
        from reconcile import codes

        codes.forget()   # (the within-file comparison's: the records do not group values)
        # the fingerprints go once: with the within-file result when it carries them, else with
        # the records (see below)
        fingerprints_sent = within_result is not None and within_result[1] is not None
        if within_result is not None:
            sender.put(within_result)
        del within_result   # (sent as bytes)
        if scratch is not None and side._fingerprints is not None:
            # the records read the standardised fields, the fingerprints (computed) and the raw
            # rows: the blocking keys go first (at 1,000,000 persons the worker's peak while the
            # caller writes the report)
            from reconcile.fields import STANDARD_COLUMNS
            from reconcile.match import column_view

            side.std = column_view(side.std, [c for c in side.std.columns if c in STANDARD_COLUMNS])
        records = None if scratch is None else _records_result(
            side, scratch, fingerprints=not fingerprints_sent,
            base=base if base is not None and caller.base_started() else None)
        # the last result is small enough for the pipe's buffer: once the caller has read the
        # within-file result, this process ends, instead of holding the registry (3.2 GB at
        # 1,000,000 persons) until the caller reads the records, once its report is written
        del side, raw
        if records is not None:
            sender.put(records)
    finally:
        sender.close()


class _Sender:
    """Pickled results written to ``out`` in the order given, by one thread (a write waits for the
    reader, without the GIL); ``close()`` returns once all are written, or the reader is gone."""

    def __init__(self, out) -> None:
        import queue
        import threading

        self._out = out
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def put(self, result: tuple) -> None:
        self._queue.put(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))

    def _write(self) -> None:
        gone = False
        while True:
            data = self._queue.get()
            if data is None:
                return
            if gone:
                continue
            try:
                self._out.write(data)
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):   # the caller went on without it
                gone = True

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _linking_side(side, columns: Collection[str]):
    """A copy of ``side`` with only ``columns`` of its std and ``k_filled`` (linking_only)."""
    from reconcile.match import with_filled

    return replace(side, std=with_filled(side.std, columns), linking_only=True)


def _counts_result(side) -> tuple[bool, Any]:
    """(True, the side's reconcile.scoring.term_counts), or (False, None) (the caller counts)."""
    try:
        from reconcile.scoring import term_counts

        return (True, term_counts(side.std))
    except BaseException:   # noqa: BLE001
        return (False, None)


def _within_result(side, within: tuple) -> tuple[bool, Any]:
    """(True, (Blocked, fingerprints)) of the side with itself, (True, None) when there is
    nothing to compare, (False, None) when it failed (the caller does it itself)."""
    try:
        blocked = _block(side, within)
        if blocked is None:
            return (True, None)
        blocked.arrays = None   # the frame's own columns, which the caller has: not sent back
        # and the report's record fingerprints, while the caller is still linking the registries
        return (True, (blocked, side.fingerprints))
    except BaseException:   # noqa: BLE001
        return (False, None)


def _records_result(side, scratch: str, fingerprints: bool = True, base: str | None = None) -> tuple[bool, Any]:
    """(True, (CopiedRows or ReportBase, seconds taken, the side's fingerprints or None when not
    asked)) of the side's `records` rows built into ``scratch``, or into the report base at
    ``base`` that holds the caller's (reconcile.report.finish_report_base); or (False, None)."""
    try:
        from reconcile.match import record_chunks, write_side_records
        from reconcile.report import finish_report_base

        t0 = time.perf_counter()
        made = write_side_records(side, Path(scratch)) if base is None else \
            finish_report_base(base, record_chunks(side))
        return (True, (made, time.perf_counter() - t0, side.fingerprints if fingerprints else None))
    except BaseException:   # noqa: BLE001 - the caller builds them itself
        return (False, None)


if __name__ == "__main__":
    _worker_main()
