"""SplitMix64, the generator's random number generator (the Rust side implements the same).

Every trace draws from its own stream, seeded from (seed, trace index) only::

    state(seed, index) = mix64(mix64(seed) + index)      (mod 2**64)

where ``mix64(x)`` is one SplitMix64 output for state ``x``. ``below(n)`` is ``next_u64() % n``.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(x: int) -> int:
    """The SplitMix64 output for state ``x`` (add the golden gamma, then finalise)."""
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class SplitMix64:
    __slots__ = ("state",)

    def __init__(self, state: int):
        self.state = state & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + GOLDEN) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A number in ``[0, n)``."""
        return self.next_u64() % n

    @classmethod
    def for_trace(cls, seed: int, index: int) -> "SplitMix64":
        return cls(mix64((mix64(seed & MASK64) + index) & MASK64))
