"""`python -m tunesmith ...` is the `tunesmith` command (what `torchrun -m tunesmith train ...` runs)."""

from tunesmith.cli import main

if __name__ == "__main__":
    main()
