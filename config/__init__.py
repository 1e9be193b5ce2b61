"""Typed, validated settings and pinned versions for meshlab."""

from config.loader import load_settings, load_stack_file
from config.settings import Settings
from config.validation import Problem, SettingsError

__all__ = ["Problem", "Settings", "SettingsError", "load_settings", "load_stack_file"]
