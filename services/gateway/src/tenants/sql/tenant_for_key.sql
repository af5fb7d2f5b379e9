SELECT a.tenant_id, t.name, t.default_country
FROM api_keys a
JOIN tenants t ON t.id = a.tenant_id
WHERE a.key_hash = $1 AND a.revoked_at IS NULL
