//! The gateway over HTTP, against the real local PostgreSQL: each test starts
//! its own gateway on port 0 with its own database, and, when it needs them,
//! its own fake contacts and messaging gRPC servers.

mod api_keys;
mod authentication;
mod bounces;
mod fakes;
mod helpers;
mod imports;
mod services_down;
mod signing;
mod unsubscribe;
mod webhooks;
