"""Artifact blobs in a local folder: temporary file, fsync, rename; read back verified."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from modelcycle.errors import ArtifactError
from modelcycle.store.artifacts.base import ContentStore

__all__ = ["LocalArtifactStore"]


class LocalArtifactStore(ContentStore):
    """Content-addressed blobs under a local folder (``<root>/ab/abcdef…``).

    Example:
        >>> import tempfile
        >>> store = LocalArtifactStore(tempfile.mkdtemp())
        >>> digest, size = store.put_bytes(b"model weights")
        >>> store.get_bytes(digest)
        b'model weights'
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        self._tmp = self.root / ".tmp"
        self._inside = str(self.root) + os.sep
        self._made: set[Path] = set()

    def _path(self, key: str) -> Path:
        """Where ``key`` lives; refused if a symbolic link under the root would lead outside it."""
        path = self.root / key
        real = os.path.realpath(path)
        if not real.startswith(self._inside):
            raise ArtifactError(f"{key!r} leads outside the artifact store {self.root} (a symbolic link in it points to "
                                f"{real}); remove the link")
        return path

    def _mkdir(self, path: Path) -> None:
        if path not in self._made:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ArtifactError(f"cannot create artifact folder {path}: {e.strerror}") from None
            self._made.add(path)

    def local_path(self, digest: str) -> Path | None:
        """The file holding blob ``digest``, for a server to send as it is (its reader verifies the bytes); None when
        there is no such blob."""
        path = self._path(self._key(digest))
        return path if path.is_file() else None

    def adopt(self, path: str | os.PathLike[str], digest: str) -> bool:
        """Move the file ``path``, whose bytes were already hashed to ``digest`` and synced, into place as that blob
        (a rename: no second copy). False when it is on another file system (then store a copy instead)."""
        final = self._path(self._key(digest))
        if final.is_file():
            Path(path).unlink(missing_ok=True)
            return True
        self._mkdir(final.parent)
        try:
            os.replace(path, final)
        except OSError as e:
            if e.errno == errno.EXDEV:
                return False
            raise ArtifactError(f"cannot write to the artifact store {self.root}: {e.strerror or e}") from None
        _fsync_dir(final.parent)
        return True

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def _write_atomic(self, key: str | None, chunks: Iterable[bytes], durable: bool = True) -> tuple[str, int]:
        self._mkdir(self._tmp)
        tmp = self._path(f".tmp/{uuid.uuid4().hex}")
        h = hashlib.sha256()
        size = 0
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                if durable:
                    os.fsync(f.fileno())
            digest = h.hexdigest()
            key = key or self._key(digest)
            final = self._path(key)
            if final.is_file():
                return digest, size
            self._mkdir(final.parent)
            os.replace(tmp, final)
            if durable:
                _fsync_dir(final.parent)
            return digest, size
        except OSError as e:
            raise ArtifactError(f"cannot write to the artifact store {self.root}: {e.strerror or e}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _list(self) -> Iterator[tuple[str, float, int]]:
        if not self.root.is_dir():
            return
        for fan in sorted(self.root.iterdir()):
            if len(fan.name) != 2 or fan.is_symlink() or not fan.is_dir():
                continue
            for blob in fan.iterdir():
                st = blob.lstat()
                if stat.S_ISREG(st.st_mode):  # a link planted here is not a blob
                    yield blob.name, st.st_mtime, st.st_size


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
