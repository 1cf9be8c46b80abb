"""Errors the accelerator driver (host.driver) and its backends raise alike."""


class AcceleratorTimeoutError(TimeoutError):
    """The backend did not finish a GEMM in time (on a board: a DMA that never completes)."""
