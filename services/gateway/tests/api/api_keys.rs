use muster_gateway::{ApiKey, create_api_key, create_tenant, revoke_api_key, tenant_for_key};

use crate::helpers::{spawn_gateway, stopped_services};

#[tokio::test]
async fn a_new_organization_key_names_that_organization() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let (tenant, key) = create_tenant(&gateway.pool, "Collectif Vélo")
        .await
        .unwrap();

    let key = ApiKey::parse(&key).expect("a well-formed key");
    assert_eq!(
        tenant_for_key(&gateway.pool, &key).await.unwrap(),
        Some(tenant)
    );
}

#[tokio::test]
async fn only_the_sha256_of_a_key_is_stored() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let (_, key) = create_tenant(&gateway.pool, "Collectif Vélo")
        .await
        .unwrap();

    let stored: Vec<String> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(&gateway.pool)
        .await
        .unwrap();
    assert_eq!(stored, [ApiKey::parse(&key).unwrap().hash()]);
    assert!(!stored[0].contains(&key[3..]));
}

#[tokio::test]
async fn a_revoked_key_no_longer_names_its_organization() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (tenant, _) = gateway.tenant().await;
    let (id, key) = create_api_key(&gateway.pool, tenant, "import script")
        .await
        .unwrap();
    assert_eq!(
        tenant_for_key(&gateway.pool, &key).await.unwrap(),
        Some(tenant)
    );

    assert!(revoke_api_key(&gateway.pool, tenant, id).await.unwrap());

    assert_eq!(tenant_for_key(&gateway.pool, &key).await.unwrap(), None);
    assert!(
        !revoke_api_key(&gateway.pool, tenant, id).await.unwrap(),
        "revoked once only"
    );
}

#[tokio::test]
async fn an_organization_cannot_revoke_another_organizations_key() {
    let gateway = spawn_gateway(stopped_services().await).await;
    let (owner, _) = gateway.tenant().await;
    let (other, _) = gateway.tenant().await;
    let (id, key) = create_api_key(&gateway.pool, owner, "ci").await.unwrap();

    assert!(!revoke_api_key(&gateway.pool, other, id).await.unwrap());

    assert_eq!(
        tenant_for_key(&gateway.pool, &key).await.unwrap(),
        Some(owner)
    );
}

#[tokio::test]
async fn an_unknown_key_names_no_organization() {
    let gateway = spawn_gateway(stopped_services().await).await;
    gateway.tenant().await;

    let stranger = ApiKey::generate();

    assert_eq!(
        tenant_for_key(&gateway.pool, &stranger).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_organization_needs_a_name() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let error = create_tenant(&gateway.pool, "   ").await.unwrap_err();

    assert!(error.to_string().contains("name"), "{error}");
}

#[tokio::test]
async fn an_organization_name_is_one_line_since_pages_and_subjects_show_it() {
    let gateway = spawn_gateway(stopped_services().await).await;

    let error = create_tenant(&gateway.pool, "Verts\r\nBcc: all@example.org")
        .await
        .unwrap_err();

    assert!(error.to_string().contains("line breaks"), "{error}");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&gateway.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0);
}

/// `create-tenant` is used in scripts: what it prints on standard output is
/// the tenant and its key alone, its log lines go to standard error.
#[tokio::test]
async fn create_tenant_prints_only_the_tenant_and_its_key_on_standard_output() {
    let database = muster_testkit::fresh_database("gateway_cli").await.unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_muster-gateway"))
        .args(["create-tenant", "--name", "Collectif Vélo"])
        .env("MUSTER_DATABASE__URL", &database.url)
        .env("MUSTER_TELEMETRY__FILTER", "info")
        .output()
        .unwrap();
    muster_testkit::drop_database(&database).await.unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("tenant_id "), "{stdout}");
    assert!(lines[1].starts_with("api_key   mk_"), "{stdout}");
    assert!(stderr.contains("Store the API key now"), "{stderr}");
    assert!(
        stderr.contains("INFO"),
        "the log lines went somewhere: {stderr}"
    );
}
