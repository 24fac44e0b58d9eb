"""`raas-local chat` and the chat that `raas-local run MODEL` opens on a terminal.

Textual is imported only when the chat starts, so `raas-local --help` and the
other commands do not pay for it.
"""

from __future__ import annotations

import argparse

from raas_local import flags


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("chat", help="chat TUI with a live view of the KV cache")
    flags.add_model_flags(p)
    flags.add_policy_flags(p)
    flags.add_sampling_flags(p)
    p.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence (to watch evictions)")
    p.set_defaults(func=run_chat)
    return p


def run_chat(args) -> int:
    """Run the chat with ``args`` from `chat` or `run` (same model, policy and sampling flags)."""
    from raas_local.tui.app import ChatApp

    policy = flags.policy_from_args(args)  # a bad flag fails here, before the app starts
    model = flags.model_arg(args)
    app = ChatApp(
        engine_factory=lambda: flags.engine_from_args(args, policy),
        options=flags.sampling_from_args(args),
        model_label=str(model) if model else "SmolLM2-135M-Instruct (embedded)",
    )
    try:
        app.run()
    finally:
        app.close_engine()
    return app.return_code or 0
