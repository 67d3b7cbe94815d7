"""Replay a fixed sequence of GPU launches as one CUDA graph.

The first replay runs the launches directly (cuBLAS and cuFFT set up their workspaces and
plans then); the second captures them on this object's stream into a graph; every later
replay launches the graph: one driver call instead of one per kernel. If a launch cannot be
captured (it allocates, or synchronizes with the host), replays keep running the launches
directly.
"""
from __future__ import annotations

import sys
from typing import Callable

from ...config import config


class GraphReplay:
    """Runs ``launch_all`` on a stream of its own, as a CUDA graph from the second call on."""

    def __init__(self, dev, launch_all: Callable[[], None]):
        self.launch_all = launch_all
        # a blocking stream: work queued on it is ordered with the default stream's
        self.stream = dev.cp.cuda.Stream()
        self.graph = None
        self.calls = 0
        self.capturable = True

    def __enter__(self):
        """Make this stream current (for the copies around a replay)."""
        self.stream.__enter__()
        return self

    def __exit__(self, *exc):
        self.stream.__exit__(*exc)

    def __call__(self) -> None:
        with self.stream:
            self.calls += 1
            if self.graph is not None:
                self.graph.launch(self.stream)
            elif self.calls == 1 or not self.capturable:
                self.launch_all()
            else:
                self._capture()

    def _capture(self) -> None:
        self.stream.begin_capture()
        try:
            self.launch_all()
        except Exception as e:
            self._give_up(e)
            self.launch_all()
            return
        try:
            self.graph = self.stream.end_capture()
        except Exception as e:
            self._give_up(e, ended=True)
            self.launch_all()
            return
        self.graph.launch(self.stream)

    def _give_up(self, error: Exception, ended: bool = False) -> None:
        if not ended:
            try:
                self.stream.end_capture()
            except Exception:
                pass
        self.capturable = False
        if config.debug:
            print(f"[audiograd] CUDA graph capture failed ({error}); replaying launches one by one",
                  file=sys.stderr)
