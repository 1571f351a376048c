"""The `imgdiff-rt` command line: a thin layer over the library."""
