"""Device names: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, and sets of devices (``"cuda:0-3"``).

Parsing only: whether a framework sees the device is the backend's question
(:class:`ukr_bench.interface.DeviceUnavailableError`). A device is a choice, so anything that
names none raises a ValueError, whatever its type (:mod:`ukr_bench.validation`).
"""

from __future__ import annotations

import re

_DEVICE_RE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")
_DEVICES_RE = re.compile(r"^(cpu|cuda)(?::(\d+)(?:-(\d+))?)?$")
_ONE = "device must be 'cpu', 'cuda' or 'cuda:<index>'"
_SEVERAL = "several: a range 'cuda:<i>-<j>' / 'cpu:<i>-<j>' or a list of devices of one kind"


def parse_device(device: object) -> tuple[str, int]:
    """Split ``"cpu"``, ``"cuda"`` or ``"cuda:1"`` into (kind, index)."""
    match = _DEVICE_RE.match(device) if isinstance(device, str) else None
    if match is None:
        msg = f"{_ONE}, got {device!r}"
        raise ValueError(msg)
    return match.group(1), int(match.group(2) or 0)


def parse_devices(device: object) -> tuple[str, tuple[int, ...]]:
    """Split a device or a set of devices into (kind, indices).

    Accepts what :func:`parse_device` accepts (one device), a range ``"cuda:0-3"`` /
    ``"cpu:0-3"`` (both ends included) and a list or tuple of single devices of one kind
    (``["cuda:0", "cuda:2"]``). Indices are distinct and in the order given. Several ``cpu``
    devices are JAX's forced host devices or torch.distributed ranks on the host.
    """
    if isinstance(device, str):
        return _parse_range(device)
    if isinstance(device, (list, tuple)) and device:
        return _parse_list(device)
    msg = f"{_ONE}, got {device!r} (or, for {_SEVERAL})"
    raise ValueError(msg)


def _parse_range(device: str) -> tuple[str, tuple[int, ...]]:
    match = _DEVICES_RE.match(device)
    if match is None:
        msg = f"{_ONE}, got {device!r} (or, for {_SEVERAL})"
        raise ValueError(msg)
    first = int(match.group(2) or 0)
    last = int(match.group(3)) if match.group(3) is not None else first
    if last < first:
        msg = f"device range {device!r} is empty: write '<first>-<last>', first <= last"
        raise ValueError(msg)
    return match.group(1), tuple(range(first, last + 1))


def _parse_list(device: list[object] | tuple[object, ...]) -> tuple[str, tuple[int, ...]]:
    parsed = [parse_device(d) for d in device]
    kinds = {kind for kind, _ in parsed}
    if len(kinds) > 1:
        msg = f"device list {device!r} mixes kinds {sorted(kinds)}: use one kind"
        raise ValueError(msg)
    indices = tuple(index for _, index in parsed)
    if len(set(indices)) != len(indices):
        msg = f"device list {device!r} names a device twice"
        raise ValueError(msg)
    return parsed[0][0], indices
