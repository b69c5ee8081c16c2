"""Where sweep results live: one part file per finished run, combined into one file at the end.

``out="results.parquet"`` (or ``.csv``) keeps one part file per finished run under
``results.parquet.parts/``; when the sweep ends they are combined into ``results.parquet`` and the
part folder is removed. ``out`` without a suffix is a folder of part files only.

Integrity. A part file is written to a temporary name and renamed into place (``os.replace``), so
a killed sweep leaves either the whole file or none. Its name carries a checksum of its bytes,
``<run id>.<checksum>.parquet``: renaming sets file and checksum in one step, and a part that was
truncated or corrupted later (a full disk, a crash of the machine, a bad copy) no longer matches
its name. Such a file is never read: it is reported by name (a RuntimeWarning), set aside
(renamed to ``*.corrupt``) by the next sweep, and its run is recomputed. The combined Parquet file
is written with Parquet page checksums, verified on reading; one that cannot be read is reported
and set aside the same way. (A combined CSV file has no checksum: prefer Parquet.)
"""
from __future__ import annotations

import hashlib
import io
import numbers
import os
import shutil
import socket
import warnings
from pathlib import Path

__all__ = ["load_sweep", "PartStore"]

# Read as text from CSV: type inference would turn an all-digit run id (or dataset hash) into an
# int (or one like "123e45..." into a float), and the finished run would no longer be recognised.
_TEXT_COLUMNS = {"run_id": str, "status": str, "error": str, "dataset": str, "dataset_hash": str}

# Temporary files are named after the writing process, so a rerun can remove those left by a
# killed one, and never those of a sweep still writing (another process, or another machine
# sharing the folder).
_TMP = ".tmp-"


def _layout(out):
    """(combined file or None, parts folder, part suffix)."""
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"sweep: out must be a path (str or os.PathLike) ending in .parquet or .csv, or a folder, "
                        f"got {type(out).__name__}")
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".csv"):
        return out, out.with_name(out.name + ".parts"), suffix
    if suffix:
        raise ValueError(f"sweep: out must end in .parquet or .csv (or be a folder), got '{out}'")
    return None, out, ".parquet"


def _checksum(data):
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _serialize(df, suffix):
    if suffix == ".csv":
        return df.to_csv(index=False).encode()
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, write_page_checksum=True)
    return buf.getvalue()


def _parse(data, suffix):
    import pandas as pd

    if suffix == ".csv":
        return pd.read_csv(io.BytesIO(data), dtype=_TEXT_COLUMNS)
    return pd.read_parquet(io.BytesIO(data), page_checksum_verification=True)


def _write_bytes(data, path):
    """Writes atomically: a temporary file in the same folder, then os.replace."""
    path = Path(path)
    tmp = path.with_name(f"{_TMP}{socket.gethostname()}-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write(df, path):
    path = Path(path)
    _write_bytes(_serialize(df, path.suffix.lower()), path)


def _remove_stale_tmp(folder):
    """Removes temporary files left in ``folder`` by killed processes of this machine."""
    prefix = f"{_TMP}{socket.gethostname()}-"
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid = p.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def _kind(value):
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Number):
        return "number"
    return "str" if isinstance(value, str) else type(value).__name__


def _uniform(df):
    """Turns object columns that mix kinds of values (e.g. 32 and the JSON text "[8, 16]" from a
    grid ``[32, [8, 16]]``) into text, so Parquet can store them; missing values stay missing."""
    for col in df.columns:
        s = df[col]
        if s.dtype != object:
            continue
        present = s.notna()
        if len({_kind(v) for v in s[present]}) > 1:
            df[col] = s.where(~present, s[present].map(str)).astype(object)
    return df


def _read_part(path, suffix):
    """``(frame, None)``, or ``(None, reason)`` when the part file must not be trusted."""
    try:
        data = path.read_bytes()
    except OSError as e:
        return None, f"unreadable ({e})"
    rid, _, digest = path.name[: -len(suffix)].partition(".")
    if digest and _checksum(data) != digest:
        return None, f"checksum mismatch ({len(data)} bytes; truncated or corrupted)"
    try:
        df = _parse(data, suffix)
    except Exception as e:  # noqa: BLE001 - any parse failure means a damaged file
        return None, f"cannot be parsed ({type(e).__name__}: {e})"
    if "run_id" in df.columns and len(df) and set(df["run_id"].astype(str)) != {rid}:
        return None, f"holds the results of another run ({df['run_id'].iloc[0]}), not {rid}"
    return df, None


class PartStore:
    """The results stored at ``out``: reading (with integrity checks) and atomic writing."""

    def __init__(self, out):
        self.combined, self.parts, self.suffix = _layout(out)
        self._files = {}  # run id -> its part files found by scan() (replaced on write)

    def scan(self, quarantine=False):
        """All stored results as one DataFrame (the newest part of a run wins); damaged files are
        reported by name and skipped (with ``quarantine``: renamed to ``*.corrupt``)."""
        import pandas as pd

        frames, self._files = [], {}
        if self.combined is not None and self.combined.is_file():
            try:
                data = self.combined.read_bytes()
                frames.append(_parse(data, self.suffix))
            except Exception as e:  # noqa: BLE001
                self._bad(self.combined, f"cannot be read ({type(e).__name__}: {e})", quarantine)
        if self.parts.is_dir():
            files = [p for p in self.parts.iterdir() if p.suffix == self.suffix and not p.name.startswith(".")]
            for p in sorted(files, key=lambda p: p.stat().st_mtime_ns):
                df, reason = _read_part(p, self.suffix)
                if reason is not None:
                    self._bad(p, reason, quarantine)
                    continue
                self._files.setdefault(p.name.split(".", 1)[0], []).append(p)
                frames.append(df)
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        for i, f in enumerate(frames):
            f["_source"] = i
        df = _uniform(pd.concat(frames, ignore_index=True))
        newest = df.groupby("run_id")["_source"].transform("max")
        return df[df["_source"] == newest].drop(columns="_source").reset_index(drop=True)

    def _bad(self, path, reason, quarantine):
        then = "set aside as *.corrupt; its runs will be recomputed" if quarantine else \
            "skipped; rerun the sweep to recompute its runs"
        warnings.warn(f"sweep: result file '{path}' is damaged: {reason}; {then}", RuntimeWarning, stacklevel=4)
        if quarantine:
            target, n = path.with_name(path.name + ".corrupt"), 1
            while target.exists():
                target, n = path.with_name(f"{path.name}.{n}.corrupt"), n + 1
            os.replace(path, target)

    def prepare(self):
        """Creates the folders and removes temporary files of killed writers."""
        self.parts.parent.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir(exist_ok=True)
        _remove_stale_tmp(self.parts)
        _remove_stale_tmp(self.parts.parent)

    def write(self, rid, df):
        """Stores one finished run; an older part of the same run is removed once the new one is in
        place (until then both exist, and the newer wins when read)."""
        data = _serialize(df, self.suffix)
        path = self.parts / f"{rid}.{_checksum(data)}{self.suffix}"
        _write_bytes(data, path)
        for old in self._files.pop(rid, []):
            if old != path:
                old.unlink(missing_ok=True)
        self._files[rid] = [path]

    def finalize(self):
        """Combines the part files into the output file and removes them (no-op for a folder)."""
        if self.combined is None or not self.parts.is_dir():
            return
        df = self.scan()
        if len(df):
            _write(df, self.combined)
        shutil.rmtree(self.parts, ignore_errors=True)


def load_sweep(out):
    """The results stored at ``out`` (combined file and/or part files) as one DataFrame; when a run
    appears in both, the newer part file wins. Empty DataFrame if nothing is there yet.

    A damaged file (a part whose checksum does not match, or a file that cannot be parsed) is not
    read: a RuntimeWarning names it, and rerunning the sweep recomputes its runs.

    >>> import os, tempfile, pyqsgd as pq
    >>> out = os.path.join(tempfile.mkdtemp(), "res.parquet")
    >>> _ = pq.sweep(dict, grid={"a": [1, 2]}, out=out, progress=False)
    >>> pq.load_sweep(out)[["a", "status"]].values.tolist()
    [[1, 'ok'], [2, 'ok']]
    """
    return PartStore(out).scan()
