"""Pure domain of the CSMS: charger state, authorization, metering, transactions.

Nothing here performs I/O or imports OCPP, database or network libraries.
"""
