"""How every command ends on an error: one ``error: <what>`` line on stderr, no traceback, exit 2
for bad input (click's own usage errors included, which it would print as ``Error: ...``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from mabsa.errors import MabsaError


def run_as_program(run: Callable[[], Any]) -> NoReturn:
    """Call ``run`` (a click ``main`` with ``standalone_mode=False``) and exit with its status."""
    try:
        result = run()
    except MabsaError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # a bare group: its help, as click prints it
        sys.exit(e.exit_code)
    except click.UsageError as e:
        if e.ctx is not None:
            click.echo(e.ctx.get_usage(), err=True)
            click.echo(f"Try '{e.ctx.command_path} --help' for help.", err=True)
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(1)
    # standalone_mode=False returns a command's return value, or the code of ctx.exit(code)
    sys.exit(result if isinstance(result, int) else 0)
