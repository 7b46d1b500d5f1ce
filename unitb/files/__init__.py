"""Files of a run folder at the lowest level: unitb's own names, whole-file JSON, safe names, and
the file system behind a URL.
"""
