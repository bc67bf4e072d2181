"""Timescale Lifecycle: the data lifecycle of TimescaleDB tables as Pulumi dynamic resources."""

from .hypertable import Hypertable, HypertableProvider

__all__ = ["Hypertable", "HypertableProvider"]
