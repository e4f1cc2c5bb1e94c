// Package notebooks holds the end-to-end test of `make notebooks`: it builds
// fathom, replays a small Bitbrains excerpt with `fathom sim` and `fathom
// sim sweep`, executes every notebook in notebooks/ headless with Jupyter
// and checks the HTML and PNG figures. It skips where Jupyter (or pandas and
// matplotlib for Debian's python3) is not installed; `make notebooks-deps`
// installs them.
package notebooks
