"""`raas-local chat` and the chat that `raas-local run MODEL` opens on a terminal.

Textual is imported only when the chat starts, so `raas-local --help` and the
other commands do not pay for it.
"""

from __future__ import annotations

import argparse

from raas_local.cli import add_model_flags, add_sampling_flags, engine_from_args


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("chat", help="chat TUI with a live view of the KV cache")
    add_model_flags(p)
    add_sampling_flags(p)
    p.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence (to watch evictions)")
    p.set_defaults(func=run_chat)
    return p


def run_chat(args) -> int:
    """Run the chat with ``args`` from `chat` or `run` (same model and sampling flags)."""
    from raas_local.tui.app import ChatApp
    from raas_local.tui.generation import GenOptions

    model = getattr(args, "model_flag", None) or args.model
    app = ChatApp(
        engine_factory=lambda: engine_from_args(args),
        options=GenOptions.from_args(args),
        model_label=str(model) if model else "SmolLM2-135M-Instruct (embedded)",
    )
    try:
        app.run()
    finally:
        app.close_engine()
    return app.return_code or 0
