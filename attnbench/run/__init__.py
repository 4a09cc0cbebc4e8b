"""The run pipeline: preflight (compose + validate once -> typed `RunConfig`s) -> Hydra app (one
job) -> experiment -> sweep callback; `launch` drives it for `run`/`sweep`; `resume` and
`reproduce` reuse it."""
