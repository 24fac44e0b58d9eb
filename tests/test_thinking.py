"""Thinking blocks: streamed split, history stripping, the engine's span."""

from raas_local.thinking import ThinkSplitter, strip_thinking, think_span

TAGS = ("<think>", "</think>")


def feed_all(splitter, pieces):
    think, answer = [], []
    for p in pieces:
        t, a = splitter.feed(p)
        think.append(t)
        answer.append(a)
    t, a = splitter.flush()
    return "".join(think + [t]), "".join(answer + [a])


def test_no_tags_is_all_answer():
    assert feed_all(ThinkSplitter(None), ["Hello", " <think>x</think>"]) == ("", "Hello <think>x</think>")


def test_block_split_across_tokens():
    pieces = ["<th", "ink>", "step 1", ", step 2</", "thi", "nk>", "\n\nThe answer", " is 4."]
    assert feed_all(ThinkSplitter(TAGS), pieces) == ("step 1, step 2", "The answer is 4.")


def test_thinking_streams_before_the_close_tag_arrives():
    s = ThinkSplitter(TAGS)
    assert s.feed("<think>abc") == ("abc", "")
    assert s.thinking
    assert s.feed("de</") == ("de", "")  # "</" is held back: it may start the close tag
    assert s.feed("x") == ("</x", "")


def test_template_opened_block():
    assert feed_all(ThinkSplitter(TAGS, start_in_thinking=True), ["hmm", "</think>", "42"]) == ("hmm", "42")


def test_answer_without_thinking_releases_held_whitespace():
    assert feed_all(ThinkSplitter(TAGS), ["  ", "Hi"]) == ("", "  Hi")
    assert feed_all(ThinkSplitter(TAGS), ["<", "b>bold"]) == ("", "<b>bold")


def test_unfinished_block_at_end():
    assert feed_all(ThinkSplitter(TAGS), ["<think>still going</thi"]) == ("still going</thi", "")


def test_strip_thinking_matches_engine_rule():
    assert strip_thinking("<think>a</think>\n\nB", TAGS) == "\n\nB"
    assert strip_thinking("pre<think>a</think>B", TAGS) == "preB"
    assert strip_thinking("<think>unfinished", TAGS) == ""
    assert strip_thinking("a</think>B", TAGS) == "B"
    assert strip_thinking("plain", TAGS) == "plain"
    assert strip_thinking("<think>x</think>y", None) == "<think>x</think>y"


def test_think_span_is_the_first_complete_block():
    assert think_span("pre<think>a</think>B", TAGS) == (3, 19)
    assert think_span("<think>unfinished", TAGS) is None
    assert think_span("a</think>B", TAGS) is None  # the cache cannot tell where a template-opened block began
    assert think_span("<think>x</think>y", None) is None
