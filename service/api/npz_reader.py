"""Read x and y from an uploaded .npz without trusting it: every member's declared size and
.npy header are checked before a byte is inflated, and inflation stops at the declared size,
so a zip bomb or a forged header is a clear 422, never a memory spike or a 500."""
import io
import zipfile

import numpy as np

MEMBERS = ("x", "y")


class BadArchive(ValueError):
    """The archive is not a usable .npz; the message says why."""


def read_npz_arrays(data: bytes, max_inflated_bytes: int,
                    members: tuple[str, ...] = MEMBERS) -> tuple[np.ndarray, ...]:
    """The named arrays (default x, y) from .npz bytes whose members inflate to at most
    max_inflated_bytes in total."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise BadArchive(f"not a readable .npz archive: {exc}") from None
    with archive:
        infos = {info.filename[:-4]: info for info in archive.infolist()
                 if info.filename.endswith(".npy")}
        missing = [name for name in members if name not in infos]
        if missing:
            raise BadArchive(f"the archive lacks array(s) {missing}; it has {sorted(infos)}")
        declared = sum(infos[name].file_size for name in members)
        if declared > max_inflated_bytes:
            raise BadArchive(f"{' and '.join(members)} inflate to {declared} bytes; at most "
                             f"{max_inflated_bytes} are accepted")
        return tuple(_read_member(archive, infos[name]) for name in members)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    name = info.filename
    try:
        with archive.open(info) as member:
            shape, fortran, dtype = _header(member, name)
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            offset = member.tell()
            if offset + expected != info.file_size:
                raise BadArchive(f"{name}: its header describes {expected} bytes of data but "
                                 f"the member holds {info.file_size - offset}")
            payload = member.read(expected)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        if isinstance(exc, BadArchive):
            raise
        raise BadArchive(f"{name}: cannot be read: {exc}") from None
    if len(payload) != expected:
        raise BadArchive(f"{name}: truncated ({len(payload)} of {expected} bytes)")
    array = np.frombuffer(payload, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _header(member, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The .npy header (format 1.0 to 3.0), refusing object and structured dtypes."""
    try:
        version = np.lib.format.read_magic(member)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(member, max_header_size=10_000)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise BadArchive(f"{name}: not a valid .npy header: {exc}") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise BadArchive(f"{name}: dtype {dtype} is not a plain numeric type")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise BadArchive(f"{name}: invalid shape {shape}")
    return shape, fortran, dtype
