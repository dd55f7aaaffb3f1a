"""Dataset finishing tools: pack, validate and analyze the production datasets (``production/<device>_code``)."""
