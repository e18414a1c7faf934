"""What ``profile="quick"`` and ``profile="full"`` mean, chapter by chapter, in one place.

``quick`` is the chapter's size for a 2-core CPU (CI); ``full`` is the source's scale, meant for
one GPU. A chapter reads its row through :func:`advtut.chapter.start_chapter`; nothing else in
the package branches on the profile.
"""
from __future__ import annotations

from types import MappingProxyType

__all__ = ["PROFILES", "settings"]

PROFILES: dict[str, dict[str, dict]] = {
    "01_iris": {
        # Iris is tiny: both profiles fit the same model on all 150 flowers; full only draws finer
        # maps and runs the gradient-descent check longer.
        "quick": dict(grid_points=250, gd_outer_steps=20, gd_inner_steps=400,
                      c_values=(0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)),
        "full": dict(grid_points=600, gd_outer_steps=40, gd_inner_steps=2000,
                     c_values=(0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)),
    },
}


def settings(chapter: str, profile: str) -> MappingProxyType:
    """The read-only settings of ``chapter`` in ``profile``; ``ValueError`` for unknown names."""
    if chapter not in PROFILES:
        raise ValueError(f"unknown chapter {chapter!r}; known: {sorted(PROFILES)}")
    table = PROFILES[chapter]
    if profile not in table:
        raise ValueError(f"profile must be one of {sorted(table)} for {chapter}, got {profile!r}")
    return MappingProxyType(dict(table[profile]))
