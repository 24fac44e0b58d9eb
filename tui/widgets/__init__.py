"""Widgets of the chat TUI, one job per module."""
