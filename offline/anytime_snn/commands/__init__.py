"""Subcommands of ``anytime-snn``; one module each (see :mod:`anytime_snn.cli`)."""
