"""attnbench plugin: RBF-kernel attention (see rbf.py), selectable as `attention=rbf`."""
