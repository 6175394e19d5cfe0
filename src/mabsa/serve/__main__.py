"""``python -m mabsa.serve ...`` runs ``mabsa serve`` (user errors as one line, exit 2)."""

from mabsa.cli.serve import main

main()
