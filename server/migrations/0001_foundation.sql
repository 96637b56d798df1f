-- Documents, nodes, activations and tags. Portable between SQLite and PostgreSQL:
-- TEXT and BIGINT only, times as epoch milliseconds, flags as 0/1.

CREATE TABLE documents (
    name TEXT PRIMARY KEY,
    document_type TEXT NOT NULL,
    target_type TEXT,
    default_version BIGINT NOT NULL,
    latest_version BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE document_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    version_name TEXT,
    content TEXT NOT NULL,
    format TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE activations (
    activation_id TEXT PRIMARY KEY,
    code_sha256 TEXT NOT NULL,
    description TEXT NOT NULL,
    default_instance_name TEXT NOT NULL,
    iam_role TEXT NOT NULL,
    registration_limit BIGINT NOT NULL,
    registrations_count BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE nodes (
    instance_id TEXT PRIMARY KEY,
    resource_type TEXT NOT NULL,
    activation_id TEXT,
    iam_role TEXT NOT NULL,
    name TEXT NOT NULL,
    public_key TEXT,
    fingerprint TEXT,
    registered_ms BIGINT NOT NULL,
    last_ping_ms BIGINT,
    agent_name TEXT,
    agent_version TEXT,
    platform_type TEXT,
    platform_name TEXT,
    platform_version TEXT,
    computer_name TEXT,
    ip_address TEXT
);

CREATE TABLE node_credentials (
    access_key_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    secret_access_key TEXT NOT NULL,
    session_token TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE INDEX node_credentials_by_instance ON node_credentials (instance_id);

-- Tags of every resource type. `source` is 'admin' (AddTagsToResource, activation
-- and configuration tags) or 'agent' (reported by the node itself); on the same key
-- the administrator's value wins.
CREATE TABLE tags (
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    source TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, source, tag_key)
);
