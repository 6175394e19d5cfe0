"""``python -m mabsa.serve ...`` runs ``mabsa serve`` (user errors as one line, exit 2)."""

from mabsa.serve.cli import main

main()
