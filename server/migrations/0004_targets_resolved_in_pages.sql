-- A command sent through `Targets` is stored once its first matching nodes are
-- found; the other nodes are found and stored after. `resolve_after` is the instance
-- id after which nodes remain to be looked at (NULL once every node was), and
-- `caller_json` what authorizes the sender for them, should the server restart in
-- between and finish the work without the request.

ALTER TABLE commands ADD COLUMN resolve_after TEXT;

ALTER TABLE commands ADD COLUMN caller_json TEXT;

CREATE INDEX commands_resolving ON commands (requested_ms) WHERE resolve_after IS NOT NULL;
