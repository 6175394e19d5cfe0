"""The service's lifecycle as an operator sees it: one log line once it is ready (issue #28 item 14)."""

import logging

from mabsa.serve import ServeConfig, create_app
from serve_support import running_server, tiny_checkpoint


def test_ready_is_logged_once_with_the_url_when_readyz_turns_200(tmp_path_factory, caplog):
    caplog.set_level(logging.INFO, logger="mabsa.serve")
    config = ServeConfig(checkpoints={"tiny": str(tiny_checkpoint(tmp_path_factory))}, evidence=None, url="http://h:1/")
    with running_server(create_app(config)):  # returns once /readyz answers 200
        ready = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ready")]
    assert ready == ["ready at http://h:1/ (models: tiny)"]
