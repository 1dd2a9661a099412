//! Shared `Arbitrary` inputs and models for the fuzz targets.

pub mod policy;
