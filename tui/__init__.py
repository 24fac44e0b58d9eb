"""raas-local chat TUI (installed as raas_local.tui)."""
