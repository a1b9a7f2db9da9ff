"""A switch that makes warehouse inserts fail, for outage drills and the outage test.

The embedded warehouse runs inside the worker, so it cannot be unplugged from outside
like a ClickHouse server. With ``CALLPULSE_FAULT_DIR`` set, every insert first looks
for the file ``warehouse-down`` in that directory and, while it exists, fails the way
an unreachable server does. Without the variable nothing is checked.

    CALLPULSE_FAULT_DIR=var/faults callpulse up &
    touch var/faults/warehouse-down     # the outage starts
    rm var/faults/warehouse-down        # and ends
"""

from __future__ import annotations

import os
from pathlib import Path

from warehouse.client import WarehouseUnavailable

SWITCH_NAME = "warehouse-down"


class FaultSwitch:
    def __init__(self, directory: str | os.PathLike[str] | None = None):
        directory = directory if directory is not None else os.environ.get("CALLPULSE_FAULT_DIR")
        self.switch = Path(directory) / SWITCH_NAME if directory else None

    def check(self, what: str) -> None:
        if self.switch is not None and self.switch.exists():
            raise WarehouseUnavailable(f"{what} refused: the warehouse is down (fault switch {self.switch})")
