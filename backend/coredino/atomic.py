"""Files that appear complete or not at all (the rules live in :mod:`coredino_contract.files`)."""

from coredino_contract.files import atomic_open, temp_name

__all__ = ["atomic_open", "temp_name"]
