"""Where a sweep's Tune state and trial checkpoints live: a folder (local disk or a shared mount) or an object
store (``s3://``, ``gs://``, ...) through pyarrow's filesystems, which Ray Tune and Train use themselves.

The sweep's durable state never goes to an object store (no atomic rename, no transactional SQLite): it stays
in the local state folder or an RDB (docs/sweeps.md, "Object-store storage"). This module only lists and
reads what Tune persisted there: its segments, and the trials' checkpoints with their manifests.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from crl_core.config import ConfigError
from crl_core.redaction import redact_text

__all__ = ["OBJECT_STORE_SCHEMES", "is_uri", "check_storage_uri", "join", "filesystem", "probe_object_store",
           "train_run_name", "list_segments", "checkpoint_candidates", "local_checkpoint"]

# object stores pyarrow.fs.FileSystem.from_uri resolves (bucket or container first in the path); HDFS is
# left out: its URIs name a host, not a bucket, and nothing here was tried on it
OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss")


def is_uri(location: str) -> bool:
    return "://" in str(location)


def check_storage_uri(uri: str, key: str = "storage_dir") -> None:
    """An object-store URI the sweep can use: a known scheme, a bucket, no credentials in it (they would be
    logged with the config; they come from the environment or the node's role), no query."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        raise ConfigError(f"{key}: '{redact_text(uri)}': write a local folder as a plain path, not file://")
    if parts.scheme not in OBJECT_STORE_SCHEMES:
        raise ConfigError(f"{key}: '{redact_text(uri)}' is not a folder or an object-store URI "
                          f"({', '.join(s + '://' for s in OBJECT_STORE_SCHEMES)})")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{key}: credentials and options do not belong in the URI (it is logged with the "
                          f"sweep's config); set them in the environment of every node (e.g. AWS_ACCESS_KEY_ID, "
                          f"AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) or use the node's role")
    if not parts.netloc:
        raise ConfigError(f"{key}: '{uri}' names no bucket ({parts.scheme}://BUCKET/PREFIX)")


def join(location: str, *names: str) -> str:
    """``location/name/...`` for a folder path or a URI alike."""
    return "/".join([str(location).rstrip("/"), *names])


def filesystem(location: str):
    """``(pyarrow filesystem, path within it)`` of a folder or a URI."""
    import pyarrow.fs as pafs

    if not is_uri(location):
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    return pafs.FileSystem.from_uri(location)


def probe_object_store(uri: str, key: str = "storage_dir") -> str:
    """Before anything starts: the bucket exists and is reachable with this machine's credentials, and the
    prefix is not a file. Reads only. Returns a line saying what was checked."""
    import pyarrow.fs as pafs

    try:
        fs, path = filesystem(uri)
        bucket = path.split("/", 1)[0]
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise ConfigError(f"{key}: bucket '{bucket}' of {uri} does not exist (or these credentials cannot "
                              "see it); create it first")
        if fs.get_file_info(path).type == pafs.FileType.File:
            raise ConfigError(f"{key}: {uri} is an object, not a prefix")
    except ConfigError:
        raise
    except Exception as exc:  # pyarrow: OSError / ArrowException with the SDK's message
        raise ConfigError(f"{key}: {uri} cannot be reached: {redact_text(str(exc))[:400]}") from None
    return f"trial checkpoints and Tune state go to {uri} (bucket reachable)"


def _listing(location: str):
    """``(filesystem, the entries directly under location)``; no entries when it does not exist."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    try:
        return fs, fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return fs, []


def train_run_name(trial_id: str, tune_trial_id: str) -> str:
    """The Ray Train run of a Train-backed trial in one segment (its checkpoints: ``<ray storage>/<name>/``)."""
    return f"train-{trial_id}-{tune_trial_id}"


def _folders(infos) -> list[str]:
    import pyarrow.fs as pafs

    return [i.base_name for i in infos if i.type == pafs.FileType.Directory]


def _segment_numbers(folders: list[str]) -> list[int]:
    return sorted(int(n.split("-", 1)[1]) for n in folders if n.startswith("segment-") and n.split("-", 1)[1].isdigit())


def list_segments(ray_storage: str) -> list[int]:
    """The segment numbers Tune has folders for under ``ray_storage`` (``segment-<n>``)."""
    return _segment_numbers(_folders(_listing(ray_storage)[1]))


def _manifest_step(fs, folder: str) -> int | None:
    """The step of the checkpoint in ``folder`` on ``fs`` if its manifest checks out (every file it lists
    present at its recorded size; crl_core.training.checkpoint_manifest_step), else None."""
    import pyarrow.fs as pafs

    from crl_core.training.trainer import CHECKPOINT_MANIFEST, checkpoint_manifest_step

    try:
        with fs.open_input_stream(f"{folder}/{CHECKPOINT_MANIFEST}") as fh:
            manifest = json.loads(fh.read().decode())
        infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    except (OSError, ValueError):
        return None
    sizes = {i.path[len(folder) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}
    return checkpoint_manifest_step(manifest, sizes.get)


def checkpoint_candidates(ray_storage: str, trial_id: str) -> list[tuple[str, int]]:
    """Every complete checkpoint Tune or Train persisted for a trial as ``(location, step)`` (a path for a
    folder, a URI for an object store): a function trial's in ``segment-*/trial_<id>/checkpoint_*``, a
    Train-backed trial's in its Train runs ``train-<id>-*/checkpoint_*``."""
    import pyarrow.fs as pafs

    top = _folders(_listing(ray_storage)[1])  # one listing of the storage root for both kinds
    folders = [f"segment-{n}/trial_{trial_id}" for n in _segment_numbers(top)]
    folders += sorted(n for n in top if n.startswith(f"train-{trial_id}-"))
    found = []
    for folder in folders:
        location = join(ray_storage, *folder.split("/"))
        fs, infos = _listing(location)
        for info in infos:
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                step = _manifest_step(fs, info.path)
                if step is not None:
                    found.append((join(location, info.base_name), step))
    return found


@contextlib.contextmanager
def local_checkpoint(location: str | None) -> Iterator[str | None]:
    """A checkpoint as a local folder: a path as it is; a URI downloaded to a temporary folder, removed
    afterwards."""
    if location is None or not is_uri(location):
        yield location
        return
    import pyarrow.fs as pafs

    folder = tempfile.mkdtemp(prefix="crl-ckpt-")
    try:
        fs, path = filesystem(location)
        pafs.copy_files(path, folder, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
