"""Models: representations (SchNet, SOAPNet, ...) composed with heads into potentials."""
