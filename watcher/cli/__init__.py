"""The command line: one module per command group, calling the service layer.

It is the top layer and may import every other package.
"""
