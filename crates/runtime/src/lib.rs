//! The runtime every Muster service starts with: layered configuration,
//! telemetry, graceful shutdown, a gRPC server with health and reflection,
//! PostgreSQL with embedded migrations, RabbitMQ topology, the transactional
//! outbox relay and the idempotent inbox consumer, and caller authentication.

pub mod admin;
pub mod auth;
pub mod bus;
pub mod config;
pub mod confirmation;
pub mod consumer;
pub mod db;
pub mod error;
pub mod grpc;
pub mod ids;
pub mod language;
pub mod outbox;
pub mod privacy;
pub mod service;
pub mod shutdown;
pub mod spreadsheet;
pub mod telemetry;
pub mod time;
pub mod unsubscribe;

pub use error::ApiError;
pub use ids::TenantId;
