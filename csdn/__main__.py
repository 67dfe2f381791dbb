"""``python -m csdn ...`` (and ``torchrun --nproc_per_node=N -m csdn train ...``) run the ``csdn`` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
