"""Shared pytest configuration: fixtures live in tests/support and are registered here."""

pytest_plugins: list[str] = ["tests.support.binaries", "tests.support.vcsim", "tests.support.kube_control_plane",
                           "tests.support.nsx_emulator"]
