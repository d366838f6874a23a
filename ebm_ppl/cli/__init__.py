"""The ``ebm-ppl`` command (also ``python -m ebm_ppl`` and ``python -m ebm_ppl.cli``).

Each subcommand is one function ``run(args) -> exit code`` registered with :func:`command`, which
records its help line, example and argument setup in :data:`COMMANDS`; :func:`build_parser`
turns that table into an argparse parser (:mod:`ebm_ppl.cli.app`, with :func:`main` and the exit
codes). Each command has its module: ``quickstart``, ``train``, ``sample``, ``report``, ``logz``,
``version``; they import the table and the shared helpers (:mod:`ebm_ppl.cli.helpers`), and
:func:`build_parser` imports them (:data:`ebm_ppl.cli.app.COMMAND_MODULES`) so that they register:
not before, so that ``train``, ``sample`` and ``logz`` can join a ``jax.distributed`` run
(``JAX_COORDINATOR_ADDRESS`` set) before anything starts JAX's backend. Adding a subcommand is one
decorated function in a new module ``ebm_ppl/cli/NAME.py``, listed in ``COMMAND_MODULES``::

    from ebm_ppl.cli.app import EXIT_OK, command
    from ebm_ppl.cli.helpers import load_model

    def _energy_arguments(parser):
        parser.add_argument("model", help="a saved .ebm file")

    @command("energy", help="print the energy of the digits under a saved model",
             example="energy runs/quickstart/rbm.ebm", arguments=_energy_arguments)
    def run(args):
        ...
        return EXIT_OK

Exit codes: 0 success; 2 a usage error or a problem the user can fix (bad option value,
unwritable output folder, invalid input), reported as one line ``ebm-ppl: error: ...`` on stderr
without a traceback (set ``EBM_PPL_TRACEBACK=1`` to see it); 130 interrupted.
"""

from ebm_ppl.cli.app import COMMANDS, Command, build_parser, command, main

__all__ = ["main", "build_parser", "command", "Command", "COMMANDS"]
