"""Which device and which autocast dtype a run uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..errors import ContrastkitError


def pick_device(name: str) -> torch.device:
    """`auto`: CUDA when available (under torchrun the rank's own GPU, LOCAL_RANK), else the CPU."""
    name = str(name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ContrastkitError(f"--device {name} but no CUDA device is available; use --device cpu")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ContrastkitError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """Mixed precision for the encoder; loss math stays fp32 (objectives upcast). `auto`: bf16 on GPUs that
    have it (else fp16 with a gradient scaler) and on CPUs with native bf16; fp32 elsewhere."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None
