"""Chapter-only code: each chapter's experiments and the source's numbers, cited.

One module per chapter (``iris``: chapter 1; ``linear_imagenet``: chapter 2; ``blindspots``:
chapter 4). They combine the general modules (``models``, ``training``, ``attacks``,
``evaluation``, ``plotting``) into the experiments of one text, and hold that text's numbers as
named constants with their citation, so that a notebook compares against
``PAPER_TABLE1["FC10(1e-4)"]`` rather than a number typed into a cell. No general module imports
from here.
"""
