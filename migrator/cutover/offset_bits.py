"""Sets of Kafka offsets of one partition's range as bitmaps: one bit per offset, so what verify
keeps per record is a few bits, never an object."""

from __future__ import annotations

__all__ = ["OffsetBits", "OffsetCount"]


class OffsetBits:
    """A set of offsets in ``[start, end)``; offsets outside are ignored (never members)."""

    __slots__ = ("_bits", "end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = max(start, end)
        self._bits = bytearray((self.end - start + 7) // 8)

    def add(self, offset: int) -> bool:
        """Add ``offset``; True when it was not a member before (and is in range)."""
        i = offset - self.start
        if not 0 <= i < self.end - self.start:
            return False
        byte, bit = divmod(i, 8)
        mask = 1 << bit
        if self._bits[byte] & mask:
            return False
        self._bits[byte] |= mask
        return True

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        i = offset - self.start
        if not 0 <= i < self.end - self.start:
            return False
        return bool(self._bits[i >> 3] & (1 << (i & 7)))


class OffsetCount:
    """How often each offset of ``[start, end)`` was seen: 0, 1, or 2 meaning "2 or more"."""

    __slots__ = ("_once", "_twice")

    def __init__(self, start: int, end: int) -> None:
        self._once = OffsetBits(start, end)
        self._twice = OffsetBits(start, end)

    def bump(self, offset: int) -> int:
        """Count one more sighting; returns the count now (saturating at 2)."""
        if self._once.add(offset):
            return 1
        if offset in self._once:
            self._twice.add(offset)
            return 2
        return 0

    def __getitem__(self, offset: int) -> int:
        return 2 if offset in self._twice else (1 if offset in self._once else 0)
