-- Indexes for the API's keyset pages: each list sorts by (key, id) and continues after a (key, id)
-- pair, which an index on exactly those columns answers without sorting the table.
CREATE INDEX clients_name_id_idx ON clients (name, id);
CREATE INDEX clients_created_id_idx ON clients (created_at, id);
CREATE INDEX clients_updated_id_idx ON clients (updated_at, id);
CREATE INDEX proposals_updated_id_idx ON proposals (updated_at, id);
CREATE INDEX proposals_created_id_idx ON proposals (created_at, id);
CREATE INDEX proposals_client_updated_idx ON proposals (client_id, updated_at, id);
CREATE INDEX knowledge_base_title_id_idx ON knowledge_base ((coalesce(title, source_uri)), id);
CREATE INDEX knowledge_base_created_id_idx ON knowledge_base (created_at, id);
CREATE INDEX users_created_id_idx ON users (created_at, id);
