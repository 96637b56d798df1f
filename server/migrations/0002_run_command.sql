-- Run Command: commands, one invocation per node, the message queue agents poll,
-- and the reply ids already applied (so a resent reply changes nothing).

CREATE TABLE commands (
    command_id TEXT PRIMARY KEY,
    requested_ms BIGINT NOT NULL,
    delivery_deadline_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    requester TEXT NOT NULL,
    document_name TEXT NOT NULL,
    document_version TEXT NOT NULL,
    comment TEXT NOT NULL,
    max_concurrency TEXT NOT NULL,
    max_errors TEXT NOT NULL,
    request_json TEXT NOT NULL,
    payload TEXT NOT NULL,
    steps_json TEXT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL,
    no_targets BIGINT NOT NULL,
    target_count BIGINT NOT NULL,
    completed_count BIGINT NOT NULL,
    error_count BIGINT NOT NULL,
    delivery_timed_out_count BIGINT NOT NULL,
    success_count BIGINT NOT NULL,
    neutral_count BIGINT NOT NULL,
    cancelled_count BIGINT NOT NULL,
    in_flight BIGINT NOT NULL,
    cancelling BIGINT NOT NULL,
    started BIGINT NOT NULL
);

CREATE INDEX commands_by_time ON commands (requested_ms);

CREATE TABLE invocations (
    command_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    instance_name TEXT NOT NULL,
    detail TEXT NOT NULL,
    released BIGINT NOT NULL,
    delivered BIGINT NOT NULL,
    start_ms BIGINT,
    end_ms BIGINT,
    trace_output TEXT NOT NULL,
    plugins_json TEXT NOT NULL,
    last_reply_at TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (command_id, instance_id)
);

CREATE INDEX invocations_by_instance ON invocations (instance_id);
CREATE INDEX invocations_by_detail ON invocations (detail);

CREATE TABLE messages (
    message_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    command_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT,
    created_ms BIGINT NOT NULL,
    visible_ms BIGINT NOT NULL,
    acknowledged BIGINT NOT NULL,
    done BIGINT NOT NULL,
    deliveries BIGINT NOT NULL
);

CREATE INDEX messages_for_node ON messages (instance_id, done, visible_ms);

CREATE TABLE replies (
    reply_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
