"""Hostile inputs (issue 17): every bad file ends in one clear ContrastkitError, never a traceback or a silently
wrong data set.

Most cases call the data loaders directly (fast); a handful go through the real CLI in a subprocess and check
exit status 2, one line of output and no traceback. ``TALLY`` counts what the suite tried (printed at the end
with ``-s``).
"""

from __future__ import annotations

import collections
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contrastkit.errors import ContrastkitError

PY = sys.executable
CLI = str(Path(PY).with_name("contrastkit"))
TALLY: collections.Counter = collections.Counter()


def expect_error(fn, *args, match: str | None = None, **kwargs) -> str:
    """fn(...) must raise ContrastkitError (a clear one-line message); returns the message."""
    TALLY["cases"] += 1
    with pytest.raises(ContrastkitError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg.strip(), msg
    if match is not None:
        assert match.lower() in msg.lower(), msg
    TALLY["clear errors"] += 1
    return msg


def expect_ok(fn, *args, **kwargs):
    TALLY["cases"] += 1
    out = fn(*args, **kwargs)
    TALLY["correct results"] += 1
    return out


# ============================================================================================== cli.main()

def _run_main(monkeypatch, capsys, argv, app):
    import contrastkit.cli as cli

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["contrastkit", *argv])
    with pytest.raises(SystemExit) as info:
        cli.main()
    out = capsys.readouterr()
    return info.value.code, out.out + out.err


def test_error_printer_does_not_interpret_markup(monkeypatch, capsys):
    TALLY["cases"] += 1

    def app():
        raise ContrastkitError("column '[/x]' and [bold]b[/bold] are bad " + "word " * 40)

    code, out = _run_main(monkeypatch, capsys, ["pretrain"], app)
    assert code == 2
    assert out.count("\n") == 1 and "[/x]" in out and "[bold]b[/bold]" in out, out
    TALLY["clear errors"] += 1


def test_ctrl_c_prints_the_resume_hint_and_exits_130(monkeypatch, capsys):
    """Through typer (which turns KeyboardInterrupt into a silent exit 130) and raised directly."""
    import typer

    TALLY["cases"] += 1
    app = typer.Typer()

    @app.command()
    def pretrain(out: str = typer.Option(None)):
        raise KeyboardInterrupt

    @app.command()
    def other():
        pass

    code, out = _run_main(monkeypatch, capsys, ["pretrain", "--out", "runs/a b"], app)
    assert code == 130 and out.count("\n") == 1, out
    assert "--out runs/a b --resume" in out
    code, out = _run_main(monkeypatch, capsys, ["pretrain"], app)
    assert code == 130 and "--out RUN --resume" in out, out

    def raw():
        raise KeyboardInterrupt

    code, out = _run_main(monkeypatch, capsys, ["pretrain", "--out=r1"], raw)
    assert code == 130 and "--out r1 --resume" in out, out
    TALLY["clear errors"] += 1
