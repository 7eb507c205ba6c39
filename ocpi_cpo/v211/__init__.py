"""OCPI 2.1.1 at the edge of the bridge: our neutral objects are 2.2.1 ones, and this package
renders them in 2.1.1 (answers, pushes) and reads 2.1.1 input into 2.2.1.

Only ocpi_cpo knows about 2.1.1; nothing here does I/O (ocpi_cpo.v211.objects is pure).
"""
