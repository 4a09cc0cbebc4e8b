from attnbench.cli import app

app(prog_name="attnbench")
