//! Typed identifiers: UUIDv7 behind a newtype per kind of thing.

/// Declares a UUIDv7 identifier newtype with parsing that names the field.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A new, time-ordered identifier.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// Wraps an identifier read from storage.
            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }

            /// Parses the text form; `field` names the request field in the error.
            pub fn parse(raw: &str, field: &str) -> Result<Self, $crate::ApiError> {
                uuid::Uuid::parse_str(raw.trim()).map(Self).map_err(|_| {
                    $crate::ApiError::invalid(field, format!("{raw:?} is not a valid id"))
                })
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// An organization: every row and every call belongs to exactly one.
    TenantId
);
