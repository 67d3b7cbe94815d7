"""Training batches prepared ahead in a background thread, so the training device never waits
for files to be decoded, resampled and cropped."""
from __future__ import annotations

import queue
import threading

import numpy as np


class BackgroundLoader:
    """Iterator of the batches ``start_step``, ``start_step + 1``, ... of a dataset (float32,
    stacked from ``dataset.batch_item``), prepared by a daemon thread up to ``prefetch`` batches
    ahead, so the training step does not wait on decoding. ``next_step``: the step next() gives.

    An exception in the thread is raised again (the same object, a note added) by the next
    ``next()``, which then ends the loader. ``close()`` or leaving a ``with`` block stops the thread
    within about a poll interval, or once it finishes the item it is decoding, even when the queue is full.
    """

    POLL_S = 0.05

    def __init__(self, dataset, batch_size: int, start_step: int = 0, prefetch: int = 2):
        if batch_size < 1 or prefetch < 1 or start_step < 0:
            raise ValueError(f"BackgroundLoader: need batch_size >= 1, prefetch >= 1, start_step >= 0; "
                             f"got {batch_size}, {prefetch}, {start_step}")
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._closed = False
        self.next_step = start_step
        self._thread = threading.Thread(target=_produce, name="audiograd-data-loader", daemon=True,
                                        args=(dataset, batch_size, start_step, self._queue, self._stop))
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        while not self._closed:
            try:
                item = self._queue.get(timeout=self.POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                self.close()
                raise item
            self.next_step = item[0] + 1
            return item[1]
        raise StopIteration

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread and drop prepared batches; waits at most ``timeout`` seconds for it."""
        self._closed = True
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()


def _produce(dataset, batch_size: int, step: int, out: queue.Queue, stop: threading.Event) -> None:
    def offer(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=BackgroundLoader.POLL_S)
                return True
            except queue.Full:
                pass
        return False

    try:
        while not stop.is_set():
            items = []
            for position in range(batch_size):
                if stop.is_set():
                    return
                items.append(dataset.batch_item(step, position, batch_size)[0])
            if not offer((step, np.stack(items))):
                return
            step += 1
    except BaseException as e:
        if hasattr(e, "add_note"):
            e.add_note(f"raised in the background data loader while preparing step {step}")
        offer(e)
