"""AWS adapters: one granter per kind behind one Protocol, identity lookup, error translation."""
