"""Errors every stage may raise where the user called the op."""


class ShapeError(RuntimeError, ValueError):
    """Shapes that do not fit the op (broadcasting, reshape, matmul, cat...)."""
