-- The saves a device untracked, found without reading all of the device's rows: every
-- negotiate asks for them (the SQLite schema has the same index).
CREATE INDEX device_saves_untracked ON device_saves (device_id, path) WHERE untracked;
