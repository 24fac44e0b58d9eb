"""User-facing errors: one line each, with the exit code the CLI returns.

Anything the user can cause (a bad path, a budget too small, a bad JSONL line)
raises a subclass of RaasError; the CLI prints ``raas-local: error: <msg>``
and exits with ``exit_code``, never a traceback.
"""

from __future__ import annotations


class RaasError(Exception):
    exit_code = 1


class ModelError(RaasError):
    """Model file missing, not GGUF, truncated, or not in the registry."""

    exit_code = 2


class PolicyError(RaasError):
    """Cache policy cannot serve this request (budget, page size, architecture)."""

    exit_code = 3


class InputError(RaasError):
    """Bad user input other than models: a JSONL file, a flag value."""

    exit_code = 4


class NativeLibraryError(RaasError):
    """The loaded libllama is not the patched one."""

    exit_code = 5
