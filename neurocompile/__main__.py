"""``python -m neurocompile``: the same command line as the ``neurocompile`` script."""

from neurocompile.cli import main

if __name__ == "__main__":
    main(prog_name="neurocompile")
