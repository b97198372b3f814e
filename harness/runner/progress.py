"""Live progress: step, loss, eval loss against the target, average watts and joules in the timed window."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


class Progress:
    def __init__(self, workload: str, target_loss: float, max_steps: int, energy_label: str, power,
                 enabled: bool = True):
        self.workload = workload
        self.target = target_loss
        self.max_steps = max_steps
        self.energy_label = energy_label
        self.power = power  # object with watts_now() and joules_since(label)
        self.console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
        self.live_mode = enabled and sys.stderr.isatty()
        self.plain = enabled and not self.live_mode
        self.state: dict[str, Any] = {}
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    def update(self, point: dict[str, Any]) -> None:
        self.state.update(point)
        self.state["watts"] = self.power.watts_now()
        self.state["joules"] = self.power.joules_since("run_start")
        if self._live:
            self._live.update(self._render())
        elif self.plain and "eval_loss" in point:
            s = self.state
            self.console.print(
                f"step {s['step']:>6}  {s['elapsed_s']:7.1f}s  loss {s['train_loss']:.4f}  "
                f"eval {s['eval_loss']:.4f} (target {self.target:.4f})  {s['watts']:.1f} W  "
                f"{s['joules']:.0f} J ({self.energy_label})",
                highlight=False,
            )

    def _render(self) -> Table:
        s = self.state
        table = Table(title=f"harness run {self.workload}", title_justify="left", show_edge=False)
        for col in ("step", "time", "train loss", "eval loss / target", "avg W", "energy"):
            table.add_column(col, justify="right")
        if s:
            eval_text = f"{s['eval_loss']:.4f}" if "eval_loss" in s else "—"
            table.add_row(
                f"{s['step']}/{self.max_steps}",
                f"{s['elapsed_s']:.1f} s",
                f"{s['train_loss']:.4f}",
                f"{eval_text} / {self.target:.4f}",
                f"{s['watts']:.1f}",
                f"{s['joules']:.0f} J ({self.energy_label})",
            )
        return table
