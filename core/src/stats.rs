//! Statistics without allocation.
