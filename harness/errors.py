"""One root exception; every failure names what reproduces it."""

from __future__ import annotations


class FactoryError(Exception):
    """Root of the factory's errors."""


class KernelRejected(FactoryError):
    """A kernel that must not become a record. ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, message: str, *, family: str = "?", seed: int | None = None,
                 device: str | None = None, kernel_name: str | None = None):
        self.reason = reason
        self.detail = message
        self.family = family
        self.seed = seed
        self.device = device
        self.kernel_name = kernel_name
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"family={self.family} seed={self.seed}"
        if self.device:
            where += f" device={self.device}"
        if self.kernel_name:
            where += f" kernel={self.kernel_name}"
        return f"[{self.reason}] {where}: {self.detail}"


class FamilyDefinitionError(FactoryError):
    """A kernels/<family>.py module that lacks what a family must provide."""
