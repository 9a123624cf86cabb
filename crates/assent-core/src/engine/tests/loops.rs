//! Revision loops.
