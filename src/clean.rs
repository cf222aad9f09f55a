//! Removal of Python bytecode pollution. Not implemented yet.
