import pytest

from raas_local.tui.commands import Command, CommandError, help_text, is_command, parse_command


@pytest.mark.parametrize(
    "text, cmd",
    [
        ("/budget 64", Command("budget", 64)),
        ("  /BUDGET   256 ", Command("budget", 256)),
        ("/policy dense", Command("policy", "dense")),
        ("/policy RAAS", Command("policy", "raas")),
        ("/new", Command("new")),
        ("/help", Command("help")),
        ("/quit", Command("quit")),
    ],
)
def test_parse(text, cmd):
    assert is_command(text)
    assert parse_command(text) == cmd


@pytest.mark.parametrize(
    "text, needle",
    [
        ("/", "empty"),
        ("/frobnicate", "unknown command /frobnicate"),
        ("/budget", "usage: /budget N"),
        ("/budget lots", "whole number"),
        ("/budget -5", "positive"),
        ("/budget 1 2", "usage"),
        ("/policy", "usage: /policy"),
        ("/new now", "takes no arguments"),
    ],
)
def test_errors(text, needle):
    with pytest.raises(CommandError, match=needle):
        parse_command(text)


def test_not_a_command():
    assert not is_command("what is /budget?")


def test_help_lists_every_command_and_policy():
    text = help_text()
    for name in ("/budget", "/policy", "/new", "/help", "/quit", "Esc", "Ctrl+N", "Ctrl+Q", "`raas`", "`dense`"):
        assert name in text
