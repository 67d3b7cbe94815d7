"""A stand-in device that runs the GPU's residual fold on the numpy interpreter (whose conv_rows
reads an addend), so the scheduler's handling of graph passes is tested on every machine."""
from audiograd.devices.cuda.residual import fold_residual_adds
from audiograd.devices.interp.device import InterpDevice


class FoldingDevice(InterpDevice):
    kind = "folding"
    graph_passes = (fold_residual_adds,)


DEVICE_CLASS = FoldingDevice
