"""The `csms` command line for CPO staff.

Parses arguments and prints; the work is done by csms.services and csms.app.
"""
