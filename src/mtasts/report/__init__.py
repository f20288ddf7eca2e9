"""TLSRPT reports: reading them from mail, files and mailboxes, storing, analysing and serving.

Adapters around the sans-I/O parser in :mod:`mtasts.core.tlsrpt_report`.
"""
