"""``python -m advtut.book``: see :mod:`advtut.book.cli`."""
import sys

from advtut.book.cli import main

sys.exit(main())
