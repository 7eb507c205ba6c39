"""Simulated OCPP charge points (one, or a fleet) for exercising the CSMS.

Nothing here is imported by the CSMS itself; the simulators only talk to it over websockets.
"""
