"""Chapter-only code: each chapter's experiments and the source's numbers, cited.

One package per chapter: ``iris`` (1), ``linear_imagenet`` (2), ``directions`` (3),
``blindspots`` (4), ``spectral`` (5), ``fooling`` (6) and ``attribution`` (7), each with
``experiments`` (what is computed, as frozen dataclasses) and, where the chapter has them,
``report`` (tables and results entries), ``plots`` (figures) and ``source`` (the source's models
and numbers); and ``zoo``, the trained networks several chapters share (the MNIST CNN of chapters
3, 5 and 6, the flowers CNN). They combine the library and the book machinery into the
experiments of one text and hold that text's numbers as named constants with their citation, so
that a notebook compares against ``PAPER_TABLE1["FC10(1e-4)"]`` rather than a number typed into a
cell. A chapter imports no other chapter; the library and the book machinery import nothing from
here.
"""
