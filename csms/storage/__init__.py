"""Storage: SQLAlchemy models, repositories and migrations.

The only package that writes SQL; it hands csms.core objects to the layers above.
"""
