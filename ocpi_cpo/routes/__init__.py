"""HTTP handlers of our OCPI modules, one module per file, each with a `setup(app)` that
registers its endpoint and routes through ocpi_cpo.transport.

Handlers parse and answer; the work is done by services and ocpi_cpo.registration.
"""
