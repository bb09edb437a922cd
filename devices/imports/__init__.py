"""Importing spreadsheets (CSV, XLSX) of devices and of battery replacements.

- :mod:`reading` turns a file's bytes into rows of cells (encodings, delimiters, XLSX);
- :mod:`columns` maps headers to fields (aliases, in English and French) and converts cells;
- :mod:`results` holds the per-row outcome and renders it as CSV;
- :mod:`device_rows` and :mod:`battery_rows` validate the rows and plan what changes;
- :mod:`services` writes (set-based, chunk by chunk) and drives the admin's import jobs.
"""
