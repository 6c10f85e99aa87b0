"""Progress lines that a stage prints and `kubeface run` turns into progress bars."""

from __future__ import annotations

import sys

MARKER = "kubeface-progress"


class StageProgress:
    """Print "kubeface-progress STAGE DONE TOTAL" lines, at most about 20 per stage."""

    def __init__(self, stage: str, total: int):
        self.stage = stage
        self.total = total
        self.done = 0
        self._step = max(1, total // 20)
        self._last = -1
        self._emit()

    def __call__(self, count: int = 1) -> None:
        self.done += count
        if self.done - self._last >= self._step or self.done >= self.total:
            self._emit()

    def _emit(self) -> None:
        self._last = self.done
        print(f"{MARKER} {self.stage} {self.done} {self.total}", file=sys.stdout, flush=True)


def parse(line: str) -> tuple[str, int, int] | None:
    """Return (stage, done, total) for a progress line, else None."""
    parts = line.strip().split()
    if len(parts) == 4 and parts[0] == MARKER and parts[2].isdigit() and parts[3].isdigit():
        return parts[1], int(parts[2]), int(parts[3])
    return None
