"""`raas-local chat` flags and the hand-over from `raas-local run` (no app started)."""

from __future__ import annotations

from raas_local.cli import build_parser
from raas_local.tui.cli import run_chat
from raas_local.flags import sampling_from_args
from raas_local.sampling import Sampling


def test_chat_subcommand_takes_the_model_and_sampling_flags():
    args = build_parser().parse_args(
        ["chat", "some-model", "--budget", "128", "--policy", "raas", "-n", "200", "--temp", "0", "-t", "1", "--ignore-eos"]
    )
    assert args.func is run_chat
    assert (args.model, args.budget, args.policy, args.threads) == ("some-model", 128, "raas", 1)
    assert sampling_from_args(args) == Sampling(max_tokens=200, temperature=0.0, top_p=0.95, top_k=40, ignore_eos=True)


def test_run_namespace_works_for_the_chat():
    # `raas-local run MODEL` without -p on a terminal calls run_chat with run's namespace
    args = build_parser().parse_args(["run", "-m", "x.gguf", "--budget", "256", "--top-k", "5"])
    opts = sampling_from_args(args)
    assert (opts.max_tokens, opts.top_k, opts.ignore_eos) == (2048, 5, False)
    assert args.model_flag == "x.gguf"
