//! Reading people, imports and saved segments; custom field definitions.

pub mod custom_fields;
pub mod imports;
pub mod people;
pub mod segments;
