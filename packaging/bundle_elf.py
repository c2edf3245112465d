"""Just enough ELF reading for the Linux bundle, with the standard library only.

Used by callapp.spec (which libraries does a library link), build.py (did
``strip`` leave a library loadable) and tests/packaging (what does the
bundle still need from the system). 64-bit little-endian files only, which
is every Linux target the bundle is built for; anything else reads as "not
ELF" (no needs, nothing to check).
"""

from __future__ import annotations

import struct
from pathlib import Path

PT_LOAD = 1
SHT_DYNAMIC = 6
DT_NULL = 0
DT_NEEDED = 1


def _elf64le(data: bytes) -> bool:
    return data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1


def needed(path: str | Path) -> set[str]:
    """The DT_NEEDED names of a shared library or executable (empty if not ELF)."""
    data = Path(path).read_bytes()
    if not _elf64le(data):
        return set()
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names: set[str] = set()
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != SHT_DYNAMIC:
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, entsize or 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                end = data.index(b"\0", strtab + value)
                names.add(data[strtab + value : end].decode())
    return names


def load_segments_aligned(path: str | Path) -> bool:
    """Whether every PT_LOAD segment's offset and address agree modulo its alignment.

    ``strip`` on a library that patchelf (auditwheel) rewrote can break this,
    and the loader then refuses it: "ELF load command address/offset not
    page-aligned". Files that are not ELF count as fine.
    """
    data = Path(path).read_bytes()
    if not _elf64le(data):
        return True
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, offset, vaddr, _, _, _, align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == PT_LOAD and align > 1 and offset % align != vaddr % align:
            return False
    return True
