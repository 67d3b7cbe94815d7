"""A stand-in for several GPUs of one machine: CPU devices that come in numbered instances
("standin:0", "standin:1", ...), each a device of its own. Registered by the tests that use it."""
from audiograd.devices.cpu.device import CpuDevice


class StandInDevice(CpuDevice):
    kind = "standin"
    indexed = True
    is_host = False  # reads go through to_host, as for a GPU


DEVICE_CLASS = StandInDevice
