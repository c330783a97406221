"""The scratchnet HTTP server: a Starlette app serving the MNIST classifiers.

Run it with `python -m server` (see server/__main__.py and server/README.md). Nothing in this
package imports torch.
"""
