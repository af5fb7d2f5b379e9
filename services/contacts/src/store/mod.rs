//! Reading people, imports and saved segments.

pub mod imports;
pub mod people;
pub mod segments;
