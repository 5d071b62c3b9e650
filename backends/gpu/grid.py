"""Grid mapping: a loop nest's collapsed dims onto groups × work-items (after tinygrad's
codegen/gpudims.py, rewritten for this IR).

A map's dims (after kernel_ir.collapse, innermost last) go onto the three launch axes:
the innermost dim on axis 0 (consecutive work-items touch consecutive elements), the next
on axis 1, every remaining dim merged onto axis 2 (recovered by division in the kernel).
Each axis gets a group size (a power of two, their product within the language's limit;
32 or the limit wide on axis 0, the rest of the limit on axis 1 when that axis is used)
and a group count within the device's per-axis limit; the kernel walks its axis with a
grid-stride loop, so a dim larger than the grid, or one the group size does not divide, is
still covered exactly once per element:

    for (long j0 = GID(0); j0 < d0; j0 += LSZ(0) * NGRP(0))

`Launch` sizes are what a host passes (groups per axis, work-items per group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Grid:
    groups: tuple[int, int, int]
    local: tuple[int, int, int]

    @property
    def work_items(self) -> int:
        return math.prod(self.groups) * math.prod(self.local)


def pow2_at_least(n: int) -> int:
    return 1 << max(0, (max(n, 1) - 1).bit_length())


@dataclass(frozen=True)
class DimMap:
    """Which collapsed dims each launch axis walks: axes[a] lists dims (indices into the
    collapsed shape, outermost first); an empty axis has extent 1."""

    axes: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    @staticmethod
    def of(rank: int) -> DimMap:
        if rank == 0:
            return DimMap(((), (), ()))
        inner = (rank - 1,)
        mid = (rank - 2,) if rank >= 2 else ()
        rest = tuple(range(rank - 2)) if rank >= 3 else ()
        return DimMap((inner, mid, rest))

    def extents(self, dims) -> tuple[int, int, int]:
        return tuple(math.prod(dims[d] for d in ax) for ax in self.axes)


def map_grid(dims, max_group: int = 256, max_grid=(2**31 - 1, 65535, 65535), target_items: int = 1 << 20) -> Grid:
    """Group sizes and counts for a map over `dims` (collapsed, innermost last)."""
    ext = DimMap.of(len(dims)).extents(list(dims))
    most = 1 << (min(max(max_group, 1), 256).bit_length() - 1)  # a power of two within the limit
    # two group widths only (a warp's 32, or the most), so one kernel meets few group shapes
    # (a driver that compiles per group shape, like PoCL, compiles it once or twice)
    l0 = min(32 if ext[0] <= 32 else most, most)
    l1 = 1 if ext[1] == 1 else max(1, most // l0)
    local = (l0, l1, 1)
    groups = []
    for a in range(3):
        g = -(-ext[a] // local[a])
        groups.append(max(1, min(g, max_grid[a])))
    # far more work-items than the device holds at once gain nothing: cap the grid and let
    # the loops walk the rest (bounded total launch size on every device)
    while math.prod(groups) * math.prod(local) > target_items and any(g > 1 for g in groups):
        a = max(range(3), key=lambda i: groups[i])
        groups[a] = -(-groups[a] // 2)
    return Grid(tuple(groups), local)


def rows_grid(rows: int, group: int, max_grid=(2**31 - 1, 65535, 65535)) -> Grid:
    """One group of `group` work-items per row (a row kernel), rows beyond the grid looped."""
    return Grid((max(1, min(rows, max_grid[0])), 1, 1), (group, 1, 1))


def flat_grid(n: int, group: int = 256, max_groups: int = 4096) -> Grid:
    """A 1-d grid for `n` independent items walked with a grid-stride loop."""
    return Grid((max(1, min(-(-n // group), max_groups)), 1, 1), (group, 1, 1))
