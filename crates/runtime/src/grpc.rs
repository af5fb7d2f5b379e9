//! The gRPC server every service runs: health and reflection (v1 and
//! v1alpha, for grpcurl) beside the service's own API.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic_health::server::HealthReporter;

/// A router serving health and reflection, to which a service adds its API;
/// reflection lists `services` (full names) beside health.
pub fn base_router(services: &[&str]) -> anyhow::Result<(Router, HealthReporter)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(muster_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    let v1 = reflection()
        .build_v1()
        .context("building gRPC reflection v1")?;
    let v1alpha = reflection()
        .build_v1alpha()
        .context("building gRPC reflection v1alpha")?;
    let router = Server::builder()
        .add_service(health)
        .add_service(v1)
        .add_service(v1alpha);
    Ok((router, reporter))
}

/// Serves `router` on `listener` until `shutdown`, letting in-flight calls finish.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await
        .context("gRPC server failed")
}
