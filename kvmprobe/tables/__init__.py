"""Generated tables (see scripts/gen_tables.py). Never edit the *_data.py files by hand."""
