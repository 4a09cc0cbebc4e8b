"""The run config: the conf/ groups (`groups`), Hydra composition and its one error translator
(`compose`), validation into the typed `RunConfig` (`validate`, `run_config`), and the wiring of a
typed config into task data + model (`build`)."""
