"""Errors a user can act on (defined in the contract, so the plugin shares them)."""

from coredino_contract.errors import Cancelled, UserError

__all__ = ["Cancelled", "UserError"]
