"""The order xdist hands out groups of tests (``make test``: ``--dist loadgroup``).

A group is a module's tests unless a mark names another (``tests/conftest.py``); the parts
split off their module are its slow parts (one real-data training, one Dagster command-line
process). They go first: started last, one of them would leave a worker waiting for the
other at the end of the run. The module groups follow, the largest first (xdist's order).
"""

from __future__ import annotations

from pathlib import Path

from xdist.scheduler import LoadGroupScheduling


def split_off(group: str, nodeids: dict[str, bool]) -> bool:
    """True for a group not named after the module of its tests."""
    return any(Path(nodeid.split("::", 1)[0]).stem != group for nodeid in nodeids)


class SlowPartsFirst(LoadGroupScheduling):
    def _assign_work_unit(self, node) -> None:
        first = next((group for group, nodeids in self.workqueue.items()
                      if split_off(group, nodeids)), None)
        if first is not None:
            self.workqueue.move_to_end(first, last=False)
        super()._assign_work_unit(node)
