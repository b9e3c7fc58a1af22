"""`pigeon serve` loads the server, not the SDK and the other commands (its start is part of a
planned restart's downtime, issue 13); every other command still goes through the whole CLI."""

import subprocess
import sys

PROBE = """
import sys
sys.argv = {argv!r}
from pigeon.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(code, "pigeon.client" in sys.modules, "pigeon.cli.main" in sys.modules, file=sys.stderr)
"""


def _probe(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=["pigeon", *argv])],
                          capture_output=True, text=True, timeout=60)
    return done.stderr.strip().splitlines()[-1].split()


def test_serve_alone_loads_no_sdk():
    assert _probe("serve", "--help") == ["0", "False", "False"]


def test_serve_keeps_its_one_line_usage_errors():
    done = subprocess.run([sys.executable, "-m", "pigeon", "serve", "--no-such-flag"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: No such option") and "pigeon serve --help" in done.stderr


def test_other_commands_go_through_the_whole_cli():
    assert _probe("--help") == ["0", "True", "True"]
