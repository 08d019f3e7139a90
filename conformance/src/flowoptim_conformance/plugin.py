"""pytest plugin (entry point ``pytest11``): inert unless ``--conformance-backend`` is given.

    pytest --conformance-backend reference [--conformance-dtype float64] [-k adam]

adds one test item per (backend, dtype, case) to the session; each fails with the reproducer the
command prints. Without the option this module only registers its options, and imports nothing.
"""

from __future__ import annotations

import pytest


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
    group.addoption("--conformance-xfail", default=None, help="an xfail file")


class ConformanceItem(pytest.Item):
    """One conformance case against one backend and dtype."""

    def __init__(self, *, subject, case, dtype, device, xfails, **kw) -> None:
        super().__init__(**kw)
        self.subject, self.case, self.dtype = subject, case, dtype
        self.device, self.xfails = device, xfails

    def runtest(self) -> None:
        from .runner import run_subject

        report = run_subject(self.subject, device=self.device, dtypes=[self.dtype],
                             cases=[self.case], xfails=self.xfails)  # fmt: skip
        (res,) = report.results
        if res.status == "xfailed":
            pytest.xfail(res.message)
        if res.status == "skipped":
            pytest.skip(res.message)
        if res.counts_as_failure:
            raise AssertionError(res.message)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, AssertionError):
            return f"{self.case['id']} [{self.subject.label}, {self.dtype}]\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return "flowoptim-conformance", None, self.name


def pytest_collection_modifyitems(session, config, items) -> None:
    """With ``--conformance-backend``: append the conformance items."""
    backends = config.getoption("conformance_backend")
    if not backends:
        return
    from .runner import FlowoptimSubject, _dtype_independent, dtype_name, load_xfails
    from .vectors_io import load_cases

    dtypes = [dtype_name(d) for d in config.getoption("conformance_dtype") or
              ["float32", "float64"]]  # fmt: skip
    cli_xfails = load_xfails(config.getoption("conformance_xfail"))
    cases = load_cases()
    keyword = config.getoption("keyword")
    for name in backends:
        subject = FlowoptimSubject(name)
        xf = dict(load_xfails(getattr(subject.backend, "conformance_xfails", None)))
        xf.update(cli_xfails)
        for di, dtype in enumerate(dtypes):
            for case in cases:
                if _dtype_independent(case) and di > 0:
                    continue
                item_name = f"conformance[{name}-{dtype}-{case['id']}]"
                if keyword and keyword not in item_name:
                    continue
                items.append(ConformanceItem.from_parent(
                    session, name=item_name, subject=subject, case=case, dtype=dtype,
                    device=config.getoption("conformance_device"), xfails=xf))  # fmt: skip
