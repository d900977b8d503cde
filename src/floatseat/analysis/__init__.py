"""Bulk analysis of access logs: the columnar engine, the report model and its renderers."""
