//! `muster-contacts [serve|worker|relay|all|migrate]`

fn main() -> std::process::ExitCode {
    muster_runtime::service::main::<muster_contacts::Contacts>()
}
