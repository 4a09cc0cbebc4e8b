"""Building the components from a config, seeding, and the train/eval loop."""
