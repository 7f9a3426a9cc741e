"""VideoBoost core."""
