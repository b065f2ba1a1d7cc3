"""Layer 5, presentation: text tables, JSON and CSV, charts and the investor report document."""
