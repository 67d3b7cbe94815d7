"""A pickle reader that builds only plain data: it never imports or calls anything from the file.

Checkpoints are pickles, and pickle's own unpickler runs whatever the file names. This reader
interprets the opcodes itself: numbers, strings, bytes, tuples, lists and dicts become Python
values; a global becomes a ``Global`` marker that is accepted only if the caller allows its name;
a REDUCE (a call) is handed to the caller's ``reduce`` function, which decides what the call
means; persistent ids (tensor storages) go to ``persistent_load``. Every malformed stream (bad
opcode, truncation, stack or memo misuse, oversized numbers) raises ``CheckpointError``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, Collection, Tuple

from .checkpoint_errors import CheckpointError

MAX_INT_BYTES = 64  # no weights file needs integers wider than this; wider ones are refused
MAX_TEXT_BYTES = 1 << 20  # one key or name, not a payload


@dataclass(frozen=True)
class Global:
    """A module-level name the pickle refers to (only recorded, never imported)."""
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


class _Mark:
    pass


_MARK = _Mark()


class _Stream:
    """Bounded reads over a buffer: asking for more bytes than are left is an error, not an allocation."""

    def __init__(self, buf, start: int):
        self.buf, self.pos = memoryview(buf), start

    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self.buf) - self.pos:
            raise CheckpointError(f"pickle truncated: {n} bytes wanted at byte {self.pos}, "
                                  f"{len(self.buf) - self.pos} left")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def line(self) -> str:
        end = bytes(self.buf[self.pos:self.pos + 4096]).find(b"\n")
        if end < 0:
            raise CheckpointError(f"pickle truncated: unterminated text at byte {self.pos}")
        text = self.take(end + 1)[:-1]
        return _text(text)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("pickle holds a string that is not valid UTF-8") from None


def _long(raw: bytes) -> int:
    if len(raw) > MAX_INT_BYTES:
        raise CheckpointError(f"pickle holds a {len(raw)}-byte integer; refusing integers over {MAX_INT_BYTES} bytes")
    return int.from_bytes(raw, "little", signed=True)


class _Machine:
    def __init__(self, stream: _Stream, allowed: Collection[Tuple[str, str]],
                 reduce: Callable[[Global, tuple], Any], persistent_load: Callable[[Any], Any]):
        self.s, self.allowed, self.reduce, self.persistent_load = stream, allowed, reduce, persistent_load
        self.stack: list = []
        self.memo: dict = {}

    def pop(self):
        if not self.stack or self.stack[-1] is _MARK:
            raise CheckpointError(f"pickle stack underflow at byte {self.s.pos}")
        return self.stack.pop()

    def pop_mark(self) -> list:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1:]
                del self.stack[i:]
                return items
        raise CheckpointError(f"pickle has no MARK for the opcode at byte {self.s.pos}")

    def top(self):
        if not self.stack or self.stack[-1] is _MARK:
            raise CheckpointError(f"pickle stack underflow at byte {self.s.pos}")
        return self.stack[-1]

    def global_(self, module: str, name: str) -> Global:
        if (module, name) not in self.allowed:
            raise CheckpointError(f"checkpoint refers to {module}.{name}, which a weights file does not need; "
                                  "refusing to load it (only tensors and containers are allowed)")
        return Global(module, name)

    def get(self, key: int):
        if key not in self.memo:
            raise CheckpointError(f"pickle refers to memo entry {key}, which was never stored")
        return self.memo[key]

    def put(self, key: int) -> None:
        self.memo[key] = self.top()

    def setitems(self, target, items: list) -> None:
        if not isinstance(target, dict) or len(items) % 2:
            raise CheckpointError("pickle SETITEMS on something that is not a dict, or with an odd item count")
        for k, v in zip(items[::2], items[1::2]):
            target[_hashable(k)] = v

    def appends(self, target, items: list) -> None:
        if not isinstance(target, list):
            raise CheckpointError("pickle APPENDS on something that is not a list")
        target.extend(items)

    def run(self):
        s, push = self.s, self.stack.append
        while True:
            op = s.take(1)
            if op == b".":
                return self.pop()
            handler = _OPS.get(op)
            if handler is None:
                raise CheckpointError(f"pickle opcode {op!r} at byte {s.pos - 1} is not allowed in a weights file")
            handler(self, s, push)


def _hashable(key):
    if isinstance(key, (str, int, float, bytes, bool, type(None), Global)):
        return key
    if isinstance(key, tuple) and all(isinstance(k, (str, int, float, bytes, bool, type(None))) for k in key):
        return key
    raise CheckpointError(f"pickle uses a {type(key).__name__} as a dict key")


def _reduce(m: _Machine, s, push):
    args = m.pop()
    func = m.pop()
    if not isinstance(func, Global) or not isinstance(args, tuple):
        raise CheckpointError(f"pickle REDUCE at byte {s.pos - 1} calls a {type(func).__name__} "
                              f"with {type(args).__name__} arguments")
    push(m.reduce(func, args))


def _build(m: _Machine, s, push):
    m.pop()  # object state (such as an OrderedDict's _metadata) carries nothing the weights need
    m.top()


def _persid(m: _Machine, s, push):
    push(m.persistent_load(m.pop()))


def _stack_global(m: _Machine, s, push):
    name, module = m.pop(), m.pop()
    if not isinstance(name, str) or not isinstance(module, str):
        raise CheckpointError("pickle STACK_GLOBAL with non-string names")
    push(m.global_(module, name))


def _dict(m: _Machine, s, push):
    d: dict = {}
    m.setitems(d, m.pop_mark())
    push(d)


def _setitem(m: _Machine, s, push):
    v, k = m.pop(), m.pop()
    m.setitems(m.top(), [k, v])


def _setitems(m: _Machine, s, push):
    items = m.pop_mark()
    m.setitems(m.top(), items)


def _append(m: _Machine, s, push):
    v = m.pop()
    m.appends(m.top(), [v])


def _appends(m: _Machine, s, push):
    items = m.pop_mark()
    m.appends(m.top(), items)


def _tuple_n(n: int):
    def handler(m: _Machine, s, push):
        items = [m.pop() for _ in range(n)][::-1]
        push(tuple(items))
    return handler


def _counted(fmt: str, convert):
    def handler(m: _Machine, s, push):
        n = s.unpack(fmt)
        if convert is _text and n > MAX_TEXT_BYTES:
            raise CheckpointError(f"pickle string of {n} bytes at byte {s.pos}; refusing strings over "
                                  f"{MAX_TEXT_BYTES} bytes")
        push(convert(s.take(n)))
    return handler


def _fixed(fmt: str):
    return lambda m, s, push: push(s.unpack(fmt))


def _proto(m: _Machine, s, push):
    version = s.unpack("<B")
    if version > 5:
        raise CheckpointError(f"pickle protocol {version} is unknown")


def _frame(m: _Machine, s, push):
    s.unpack("<Q")  # frames only group opcodes; bounds are checked on every read anyway


def _global(m: _Machine, s, push):
    module = s.line()
    name = s.line()
    push(m.global_(module, name))


def _memo_put(fmt: str):
    return lambda m, s, push: m.put(s.unpack(fmt))


def _memo_get(fmt: str):
    return lambda m, s, push: push(m.get(s.unpack(fmt)))


def _pop(m: _Machine, s, push):
    if m.stack and m.stack[-1] is _MARK:
        m.stack.pop()
    else:
        m.pop()


_OPS = {
    b"\x80": _proto, b"\x95": _frame,
    b"(": lambda m, s, push: push(_MARK), b"0": _pop, b"1": lambda m, s, push: m.pop_mark(),
    b"2": lambda m, s, push: push(m.top()),
    b"N": lambda m, s, push: push(None), b"\x88": lambda m, s, push: push(True),
    b"\x89": lambda m, s, push: push(False),
    b"J": _fixed("<i"), b"K": _fixed("<B"), b"M": _fixed("<H"), b"G": _fixed(">d"),
    b"\x8a": _counted("<B", _long), b"\x8b": _counted("<i", _long),
    b"X": _counted("<I", _text), b"\x8c": _counted("<B", _text), b"\x8d": _counted("<Q", _text),
    b"T": _counted("<I", _text), b"U": _counted("<B", _text),
    b"B": _counted("<I", bytes), b"C": _counted("<B", bytes),
    b"}": lambda m, s, push: push({}), b"d": _dict, b"s": _setitem, b"u": _setitems,
    b"]": lambda m, s, push: push([]), b"l": lambda m, s, push: push(m.pop_mark()),
    b"a": _append, b"e": _appends,
    b")": lambda m, s, push: push(()), b"t": lambda m, s, push: push(tuple(m.pop_mark())),
    b"\x85": _tuple_n(1), b"\x86": _tuple_n(2), b"\x87": _tuple_n(3),
    b"c": _global, b"\x93": _stack_global, b"R": _reduce, b"b": _build, b"Q": _persid,
    b"q": _memo_put("<B"), b"r": _memo_put("<I"), b"\x94": lambda m, s, push: m.put(len(m.memo)),
    b"h": _memo_get("<B"), b"j": _memo_get("<I"),
}


def read_pickle(buf, start: int, allowed: Collection[Tuple[str, str]], reduce: Callable[[Global, tuple], Any],
                persistent_load: Callable[[Any], Any]) -> Tuple[Any, int]:
    """Interpret the pickle at ``buf[start:]``; returns the object and the offset just past STOP.

    ``allowed`` lists the (module, name) globals the file may mention; ``reduce(global, args)``
    gives the value of a call; ``persistent_load(pid)`` the value of a persistent id.
    """
    stream = _Stream(buf, start)
    try:
        machine = _Machine(stream, frozenset(allowed), reduce, persistent_load)
        return machine.run(), stream.pos
    finally:
        stream.buf.release()  # a memory map cannot close while a view of it is alive
