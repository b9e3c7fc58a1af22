"""The `pigeon` command (``python -m pigeon``, and the console script). `pigeon serve` loads
the server alone: every other command's modules (the SDK, its end-to-end crypto, the siege)
took a restart's start a few tenths of a second more on a busy machine, while a planned
restart's port is closed (issue 13)."""

from __future__ import annotations

import sys


def main() -> None:
    from pigeon.cli.exits import run

    if sys.argv[1:2] == ["serve"]:
        from pigeon.cli.serve import serve

        run(serve, "pigeon serve", sys.argv[2:])
    from pigeon.cli.main import cli

    run(cli, "pigeon")


if __name__ == "__main__":
    main()
