"""Extracting an uploaded zip safely: member names cannot leave the target folder (no `..`, no
absolute or drive paths, no symbolic links), and the archive cannot expand without bound (member
count, total size, and the compression ratio of the whole archive and of each large member are
capped before anything is written; bytes are counted as written, whatever the headers claim), nor
hold names too long or too deep for the file system. Files that are not DICOM are skipped, like the
reader skips them. A member's name can hold a patient's name: refusals of names the file system
cannot take never repeat them, and no error while writing a member reaches the log as a traceback
(which would name its path)."""

from __future__ import annotations

import errno
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vcpred.imaging.formats import is_dicom_file
from vcpred.serve.errors import ServeError, StorageFull, TooLarge, UnsafeArchive, UnsupportedUpload
from vcpred.serve.settings import MB, ServeSettings
from vcpred.serve.uploads import CHUNK, _private_file

SKIPPED_NAMES = ("__MACOSX", "DICOMDIR")
RATIO_FLOOR = MB  # the compression ratio is judged only for members expanding past 1 MB
# Member names the server's file system takes: 255 bytes a name (ext4, APFS, NTFS), and a path well
# under PATH_MAX (4096) once under the study's folder; a DICOM export is a few folders deep.
MAX_PART_BYTES = 255
MAX_NAME_BYTES = 1024
MAX_DEPTH = 32
NAME_REFUSAL = (f"a zip member's name is too long or too deep (at most {MAX_PART_BYTES} bytes a name, "
                f"{MAX_NAME_BYTES} bytes in all and {MAX_DEPTH} folders deep); refused (the name is not repeated "
                "here: it may hold a patient's name): zip the series folder itself")


@dataclass
class Extracted:
    files: int = 0
    skipped: list[str] = field(default_factory=list)


def member_parts(name: str) -> tuple[str, ...]:
    """The path parts of a member name; UnsafeArchive for names that could leave the folder."""
    clean = name.replace("\\", "/")
    parts = PurePosixPath(clean).parts
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean) or ".." in parts or "\0" in clean or not parts:
        raise UnsafeArchive(f"the zip holds an unsafe path {name!r} (absolute, or leaving the folder with ..); "
                            "refused: zip the series folder itself")
    if (len(parts) > MAX_DEPTH or len(clean.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
            or any(len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for part in parts)):
        raise UnsafeArchive(NAME_REFUSAL)
    return parts


def unpacked_budget(archive_size: int, settings: ServeSettings) -> int:
    """The most the archive may expand to: --max-unpacked-mb, and max_ratio times its own size."""
    return int(min(settings.max_unpacked_bytes, settings.max_ratio * max(archive_size, 1)))


def check_members(members: list[zipfile.ZipInfo], settings: ServeSettings, archive_size: int) -> None:
    """Refuse before writing anything: too many members, links, encryption, bombs (one member
    expanding too much, or all members together: many small members add up)."""
    if len(members) > settings.max_members:
        raise UnsafeArchive(f"the zip holds {len(members)} files, more than the {settings.max_members} allowed")
    for info in members:
        member_parts(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchive(f"the zip holds a symbolic link ({info.filename!r}); refused")
        if info.flag_bits & 0x1:
            raise UnsupportedUpload("the zip is encrypted; upload an unencrypted zip")
        if info.file_size > RATIO_FLOOR and info.file_size > settings.max_ratio * max(info.compress_size, 1):
            raise UnsafeArchive(f"a zip member expands {info.file_size / max(info.compress_size, 1):.0f} times "
                                f"(more than {settings.max_ratio:.0f}); refused as a possible zip bomb")
    declared = sum(info.file_size for info in members)
    if declared > settings.max_ratio * max(archive_size, 1):
        raise UnsafeArchive(f"the zip expands {declared / max(archive_size, 1):.0f} times over all its {len(members)} "
                            f"files ({declared / MB:.0f} MB from {archive_size / MB:.1f} MB; more than "
                            f"{settings.max_ratio:.0f} times); refused as a possible zip bomb")
    if declared > settings.max_unpacked_bytes:
        raise TooLarge(f"the zip expands to {declared / MB:.0f} MB, more than the {settings.max_unpacked_mb:.0f} MB "
                       "allowed (vcpred serve --max-unpacked-mb)")


def safe_extract(archive: Path, dest: Path, settings: ServeSettings) -> Extracted:
    """Extract the DICOM files of archive under dest (keeping their relative paths)."""
    size = archive.stat().st_size
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            check_members(members, settings, size)
            return _extract(zf, members, dest, unpacked_budget(size, settings))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, ValueError) as exc:
        raise UnsupportedUpload(f"the zip is damaged or uses an unsupported format ({exc}); zip the series "
                                "folder again (plain deflate)") from None


def _extract(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path, budget: int) -> Extracted:
    result, root = Extracted(), dest.resolve()
    for info in members:
        parts = member_parts(info.filename)
        if any(p.startswith(".") or p in SKIPPED_NAMES for p in parts):
            continue  # hidden files, macOS resource forks, DICOMDIR: the reader ignores them too
        target = dest.joinpath(*parts)
        if root not in target.resolve().parents:  # belt and braces after member_parts
            raise UnsafeArchive(f"the zip member {info.filename!r} would land outside the upload folder; refused")
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except (FileExistsError, NotADirectoryError):  # a member named like an earlier member's folder, or the reverse
            raise UnsafeArchive(f"the zip member {info.filename!r} clashes with another member's name; "
                                "refused") from None
        except OSError as exc:
            raise _write_refusal(exc) from None
        budget -= _copy_member(zf, info, target, budget)
        if _is_dicom(target):
            result.files += 1
        else:
            target.unlink()
            result.skipped.append(info.filename)
    if result.files == 0:
        hint = " (NIfTI files are uploaded as they are, not zipped)" if any(
            s.lower().endswith((".nii", ".nii.gz")) for s in result.skipped) else ""
        raise ServeError(f"the zip holds no DICOM file{hint}; zip the folder of the sagittal series")
    return result


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Bytes written; TooLarge when the member expands past what is left of the budget."""
    written = 0
    try:
        with zf.open(info) as source, _private_file(target) as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > budget:
                    raise TooLarge("the zip expands past the allowed size (vcpred serve --max-unpacked-mb, and at "
                                   "most 200 times the zip's own size); refused as a possible zip bomb")
                out.write(chunk)
    except FileExistsError:
        raise UnsafeArchive(f"the zip holds {info.filename!r} twice; refused") from None
    except OSError as exc:
        raise _write_refusal(exc) from None
    return written


def _write_refusal(exc: OSError) -> ServeError:
    """A member the file system would not write, said without its path (nothing for the log)."""
    if exc.errno == errno.ENAMETOOLONG:
        return UnsafeArchive(NAME_REFUSAL)
    return StorageFull(f"the server cannot write the upload's files now ({exc.strerror or type(exc).__name__}); "
                       "try again later, or tell whoever runs vcpred serve")


def _is_dicom(path: Path) -> bool:
    """The reader's own judgement (with or without the 128-byte preamble; vcpred.imaging.formats)."""
    return is_dicom_file(path)
