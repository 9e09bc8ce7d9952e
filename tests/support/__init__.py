"""What several test modules share: builders and helpers, imported as ``tests.support.*``.

Fixtures live in ``tests/conftest.py``; a test module never imports another test module.
"""
