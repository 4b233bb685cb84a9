"""Hand-curated, cited knowledge: capability meanings, module parameters, VMM needs."""
