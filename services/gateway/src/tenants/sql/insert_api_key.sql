INSERT INTO api_keys (id, tenant_id, name, key_hash) VALUES ($1, $2, $3, $4)
