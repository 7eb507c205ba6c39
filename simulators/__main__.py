"""`python -m simulators`: the `csms-sim` command without the installed script.

Nothing but the entry point lives here.
"""

from simulators.cli import main

main(prog_name="csms-sim")
