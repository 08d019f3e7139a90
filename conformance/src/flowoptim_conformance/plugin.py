"""pytest plugin (entry point ``pytest11``): inert unless ``--conformance-backend`` is given."""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    """Only adds options: nothing else happens unless ``--conformance-backend`` is given."""
    group = parser.getgroup("flowoptim-conformance")
    group.addoption("--conformance-backend", action="append", default=[],
                    help="run the flowoptim conformance cases against this backend "
                         "(name or module:attr); repeatable")  # fmt: skip
    group.addoption("--conformance-device", default="cpu", help="cpu or cuda (default cpu)")
    group.addoption(
        "--conformance-dtype",
        action="append",
        default=[],
        help="dtype(s) to run (default float32 and float64)",
    )
