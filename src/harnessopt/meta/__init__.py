"""The meta-agent: action schemas, the workbench that carries actions out, feedback views, proposers."""
