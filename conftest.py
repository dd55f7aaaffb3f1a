"""Root conftest: registers the factory's pytest plugin (see harness/plugin.py)."""

pytest_plugins = ["harness.plugin"]
