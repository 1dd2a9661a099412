//! Criterion benches for the misdirect crates live in `benches/`; this library is empty.
