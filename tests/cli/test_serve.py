"""``mabsa serve``'s own output (the server itself is tested in tests/serve)."""

import logging

from mabsa.cli.serve import show_service_log


def test_service_lines_reach_stderr_once_as_mabsa_serve_lines(capsys):
    log = logging.getLogger("mabsa.serve")
    before = (list(log.handlers), log.level)
    try:
        show_service_log()
        show_service_log()  # idempotent: one handler, not two
        log.info("ready at %s (models: %s)", "http://127.0.0.1:8000/", "tiny")
        assert capsys.readouterr().err == "mabsa serve: ready at http://127.0.0.1:8000/ (models: tiny)\n"
    finally:
        log.handlers[:] = before[0]
        log.setLevel(before[1])
