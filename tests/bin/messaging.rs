//! `e2e-messaging [serve|worker|relay|all|migrate]`: the messaging service,
//! built with the end-to-end tests so that they can run it as a child
//! process and kill it.

fn main() -> std::process::ExitCode {
    muster_runtime::service::main::<muster_messaging::Messaging>()
}
