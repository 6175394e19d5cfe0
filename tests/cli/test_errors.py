"""Every command ends an error the same way: ``error: <what>`` on stderr, exit 2 for bad input
(issue #28 item 7), whether the error is click's or mabsa's, and from ``python -m mabsa.serve`` too."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from mabsa.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--port", "abc"], "error: Invalid value for '--port': 'abc' is not a valid integer."),
        (["score"], "error: Missing argument 'GOLD'."),
        (["no-such-command"], "error: No such command 'no-such-command'."),
        (["predict", "--checkpoint", "/nonexistent/ckpt", "--text", "hi"], "error: checkpoint not found"),
    ],
)
def test_errors_are_one_lowercase_line_with_exit_2(argv, message):
    r = CliRunner().invoke(main, argv)
    assert r.exit_code == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(message), r.stderr
    assert "Error:" not in r.stderr and "Traceback" not in r.stderr


def test_usage_errors_keep_the_usage_and_help_hint():
    r = CliRunner().invoke(main, ["score"], prog_name="mabsa")
    assert r.stderr.splitlines()[:2] == ["Usage: mabsa score [OPTIONS] GOLD PRED", "Try 'mabsa score --help' for help."]


def test_a_bare_group_prints_its_help():
    r = CliRunner().invoke(main, ["data"])
    assert r.exit_code == 2 and "Commands:" in r.stderr and "error:" not in r.stderr


def test_python_m_mabsa_serve_uses_the_same_style():
    r = subprocess.run([sys.executable, "-m", "mabsa.serve", "--port", "x"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: Invalid value for '--port': 'x' is not a valid integer."
