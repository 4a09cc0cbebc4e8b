"""The analysis wing: select runs (`select`) -> comparison model (`model`, `stats`) -> render
(`render`, `plots`); `compare` is the command; `sweep_table` the end-of-sweep table."""
