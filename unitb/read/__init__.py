"""Reading runs back: event-file records, scalar columns straight off the bytes, rows by tag, and
layout comparison.
"""
