//! Reading people and imports.

pub mod imports;
pub mod people;
