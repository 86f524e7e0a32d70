"""One module per framework, each a :class:`ukr_bench.interface.Backend` subclass.

The modules import their framework at the top; :mod:`ukr_bench.interface` imports a module
only when its backend is asked for, so importing this package costs nothing.
"""
