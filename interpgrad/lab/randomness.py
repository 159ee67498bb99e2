"""Per-item random streams: every sample (or image) draws from a generator seeded by (seed, its own indices), so a
result does not depend on the batch it was computed in: batched equals one at a time."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["generator_for", "normal_like"]


def generator_for(seed: int, *parts: int) -> torch.Generator:
    """A CPU generator seeded by ``seed`` and the integers ``parts`` (a 63-bit seed from numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), *(int(part) for part in parts)]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def normal_like(shape: tuple[int, ...], generators: list[torch.Generator], device: torch.device,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One standard normal draw of ``shape`` per generator, stacked ``[len(generators), *shape]``, on ``device``."""
    draws = [torch.randn(shape, generator=generator, dtype=dtype) for generator in generators]
    return torch.stack(draws).to(device)
