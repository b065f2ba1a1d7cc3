"""Published measurements behind hardware-profile figures (not profiles: the catalog reads only the folder above)."""
