"""The small op set every tensor program is lowered to."""
from . import library_ops

# element-wise ops (one output element from the same index of each input)
UNARY = frozenset({"neg", "exp", "log", "log1p", "sin", "cos", "sqrt", "tanh", "sigmoid", "erf",
                   "abs", "sign", "recip", "cast", "noop", "not"})
BINARY = frozenset({"add", "sub", "mul", "div", "maximum", "minimum", "pow", "atan2",
                    "cmplt", "cmple", "cmpeq", "cmpne", "and", "or"})
TERNARY = frozenset({"where"})
ELEMENTWISE = UNARY | BINARY | TERNARY
# ops whose result is bool
COMPARISON = frozenset({"cmplt", "cmple", "cmpeq", "cmpne", "and", "or", "not"})
# ops costly enough that recomputing them per broadcast element is worse than a buffer
TRANSCENDENTAL = frozenset({"exp", "log", "log1p", "sin", "cos", "sqrt", "tanh", "sigmoid", "erf", "pow", "atan2", "div", "recip"})

REDUCE = frozenset({"sum", "max"})
# ops run by a library routine or a hand-written template rather than a fused loop nest (the
# declared library ops), and the running sum (a scan kernel of its own)
LIBRARY = frozenset(library_ops.BY_NAME) | {"cumsum"}
# ops that only name data: a realized buffer, or a scalar constant broadcast by a view
SOURCE = frozenset({"buffer", "const"})
# "view" (movement), "contiguous" (forces a buffer), "assign" (in-place write)
