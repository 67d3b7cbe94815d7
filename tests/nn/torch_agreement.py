"""Whether audiograd and PyTorch agree on a call: both raise (errors of the same kind, ours naming
the op) or both succeed with the same output shape."""


def run(fn):
    """``(result, None)`` or ``(None, the exception)``."""
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001 - the kind of error is what is compared
        return None, e


def compare(op: str, ours_fn, torch_fn, same_kind) -> str:
    """'' when both agree, else a description; ``same_kind(ours, theirs)`` judges the errors."""
    theirs, terr = run(torch_fn)
    ours, oerr = run(ours_fn)
    if terr is not None:
        if oerr is None:
            return f"torch raised {terr!r} but ours gave shape {tuple(ours.shape)}"
        if not same_kind(oerr, terr):
            return f"torch raised {type(terr).__name__}, ours {oerr!r}"
        return "" if op in str(oerr) else f"our error does not name {op}: {oerr}"
    if oerr is not None:
        return f"torch gave shape {tuple(theirs.shape)} but ours raised {oerr!r}"
    if tuple(ours.shape) != tuple(theirs.shape):
        return f"shapes differ: ours {tuple(ours.shape)}, torch {tuple(theirs.shape)}"
    return ""
