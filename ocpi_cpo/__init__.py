"""OCPI CPO bridge, 2.2.1 and 2.1.1 (ocpi_cpo.v211): an aiohttp app
(`ocpi_cpo.app.build_ocpi_app`) serving our
versions, credentials and, module by module, the CPO interfaces to roaming partners.

It reads and writes through csms.core, csms.storage and csms.services; it never imports
OCPP code (csms.handlers, csms.gateway). Transport rules: ocpi_cpo.transport.
"""
