"""Root conftest. The factory's pytest plugin (harness/plugin.py) is registered by its ``pytest11`` entry point
when the project is installed (``pip install -e .``), so its options are known before pytest reads the command
line; in an uninstalled checkout this file registers it instead."""

from importlib.metadata import entry_points

if not any(ep.value == "harness.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["harness.plugin"]
