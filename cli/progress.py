"""A rich progress bar that appears only once a task has run for more than a second."""

from __future__ import annotations

import time


class DelayedProgress:
    """Call `update(done, total)`; the bar is drawn on stderr after `delay_s`, and removed at the end."""

    def __init__(self, description: str, delay_s: float = 1.0) -> None:
        self.description = description
        self.delay_s = delay_s
        self.start = time.perf_counter()
        self._progress = None
        self._task = None

    def update(self, done: int, total: int, description: str | None = None) -> None:
        """Progress so far; `description` replaces the label from here on (shown once the bar is drawn)."""
        if description is not None:
            self.description = description
        if self._progress is None:
            if time.perf_counter() - self.start < self.delay_s:
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total)
        self._progress.update(self._task, completed=done, total=total, description=self.description)

    def __enter__(self) -> DelayedProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
