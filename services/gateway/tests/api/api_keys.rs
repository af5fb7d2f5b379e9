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
