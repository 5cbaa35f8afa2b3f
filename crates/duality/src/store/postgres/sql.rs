//! The SQL of the PostgreSQL store, in one place.
//!
//! The tables mirror the SQLite store's. Documents and patches are stored as
//! JSON text, exactly as they are served. Writes send their rows as arrays
//! (`unnest`), so one write is a fixed number of statements however many
//! documents it touches.

/// The version of the schema below; kept in `meta` under `schema`.
pub const SCHEMA_VERSION: i64 = 1;

/// Serialises schema creation between processes starting at once.
pub const SCHEMA_LOCK: i64 = 0x6475_616c_0001;
/// Lets one process at a time trim the outbox; the others skip the round.
pub const TRIM_LOCK: i64 = 0x6475_616c_0002;

/// The channel every process LISTENs on; the payload is `view:revision`.
pub const CHANNEL: &str = "duality_events";

/// Creates or upgrades the schema. Runs as one implicit transaction (one
/// simple query), holding [`SCHEMA_LOCK`]; `{epoch}` and `{views}` are
/// filled in by the caller with values that need no quoting (hex, names).
///
/// A database written before catch-up gets its table of changed keys with
/// each view's current revision as the oldest position it answers for
/// (the keys changed before were never recorded).
///
/// A database written before documents kept the revision that last
/// changed them gets the column, each document stamped with its view's
/// current revision: no later than its last change and below every change
/// to come, so its `ETag` still changes with the document.
pub const SCHEMA: &str = "
SELECT pg_advisory_xact_lock({lock});
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, next BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS views (view TEXT PRIMARY KEY, revision BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS view_meta (
    view TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (view, name));
CREATE TABLE IF NOT EXISTS docs (
    view TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (view, key));
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'docs'::regclass AND attname = 'revision'
                     AND NOT attisdropped) THEN
        ALTER TABLE docs ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
        UPDATE docs AS d SET revision = v.revision FROM views AS v WHERE v.view = d.view;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS events (
    view TEXT NOT NULL, revision BIGINT NOT NULL, patch TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (view, revision));
ALTER TABLE events ADD COLUMN IF NOT EXISTS prior TEXT;
DROP INDEX IF EXISTS events_by_time;
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, outcome TEXT NOT NULL,
    created_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency (created_ms);
DO $$ BEGIN
    IF to_regclass('changed_keys') IS NULL THEN
        CREATE TABLE changed_keys (
            view TEXT NOT NULL, key TEXT NOT NULL, revision BIGINT NOT NULL,
            deleted BOOLEAN NOT NULL, changed_ms BIGINT NOT NULL,
            PRIMARY KEY (view, key));
        CREATE INDEX changed_keys_by_revision ON changed_keys (view, revision);
        CREATE TABLE IF NOT EXISTS catch_up_since (
            view TEXT PRIMARY KEY, revision BIGINT NOT NULL);
        INSERT INTO catch_up_since (view, revision) SELECT view, revision FROM views
            ON CONFLICT (view) DO UPDATE SET revision = excluded.revision;
    END IF;
END $$;
INSERT INTO meta (key, value) VALUES ('epoch', '{epoch}') ON CONFLICT (key) DO NOTHING;
INSERT INTO meta (key, value) VALUES ('schema', '{version}') ON CONFLICT (key) DO NOTHING;
{views}
";

/// Creates the rows of views the database has not seen; `{views}` is a
/// list of `('name', 0)` whose names need no quoting.
pub const INSERT_VIEWS: &str =
    "INSERT INTO views (view, revision) VALUES {views} ON CONFLICT (view) DO NOTHING;";

pub const META: &str = "SELECT key, value FROM meta WHERE key IN ('epoch', 'schema')";

pub const ALL_REVISIONS: &str = "SELECT view, revision FROM views";

/// Locks the rows of the views a write declares, always in the same order,
/// so writers of a view serialise and never deadlock.
pub const LOCK_VIEWS: &str = "SELECT view, revision FROM views WHERE view = ANY($1::text[])
    ORDER BY view COLLATE \"C\" FOR UPDATE";

pub const ADD_VIEWS: &str = "INSERT INTO views (view, revision)
    SELECT v, 0 FROM unnest($1::text[]) AS v ORDER BY v COLLATE \"C\"
    ON CONFLICT (view) DO NOTHING";

pub const REVISION: &str = "SELECT revision FROM views WHERE view = $1";

/// A service's metadata of a view (see `Store::view_meta`).
pub const VIEW_META: &str = "SELECT value FROM view_meta WHERE view = $1 AND name = $2";

pub const UPSERT_VIEW_META: &str = "INSERT INTO view_meta (view, name, value) VALUES ($1, $2, $3)
    ON CONFLICT (view, name) DO UPDATE SET value = excluded.value";

/// A document and the revision that last changed it.
pub const DOC: &str = "SELECT doc, revision FROM docs WHERE view = $1 AND key = $2";

/// Reads a counter and locks it for the rest of the transaction (creating
/// it at 1 if it was never used), in one statement.
pub const LOCK_COUNTER: &str = "INSERT INTO counters (name, next) VALUES ($1, 1)
    ON CONFLICT (name) DO UPDATE SET next = counters.next RETURNING next";

/// The stored outcome of a scoped idempotency key.
pub const OUTCOME: &str = "SELECT fingerprint, outcome FROM idempotency WHERE key = $1";

/// Stores idempotency keys with their outcomes. Writes under one scoped
/// key go to one route, so they lock the same views: a second one reads
/// the first one's key after it committed, never inserts it twice.
pub const INSERT_KEYS: &str = "INSERT INTO idempotency (key, fingerprint, outcome, created_ms)
    SELECT k, f, o, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(k, f, o)";

pub const UPSERT_DOCS: &str = "INSERT INTO docs (view, key, doc, revision)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[])
    ON CONFLICT (view, key) DO UPDATE SET doc = excluded.doc, revision = excluded.revision";

pub const DELETE_DOCS: &str = "DELETE FROM docs AS d
    USING unnest($1::text[], $2::text[]) AS x(view, key)
    WHERE d.view = x.view AND d.key = x.key";

pub const INSERT_EVENTS: &str = "INSERT INTO events (view, revision, patch, created_ms, prior)
    SELECT v, r, p, $4, b FROM unnest($1::text[], $2::int8[], $3::text[], $5::text[]) AS x(v, r, p, b)";

/// Records, per (view, key), the revision that last changed it and whether
/// it was deleted (one row per key: catch-up's table).
pub const UPSERT_CHANGED: &str = "INSERT INTO changed_keys (view, key, revision, deleted, changed_ms)
    SELECT v, k, r, d, $5 FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[]) AS x(v, k, r, d)
    ON CONFLICT (view, key) DO UPDATE SET revision = excluded.revision,
        deleted = excluded.deleted, changed_ms = excluded.changed_ms";

/// The oldest position a view's changed-key rows answer for.
pub const CATCH_UP_SINCE: &str =
    "SELECT COALESCE((SELECT revision FROM catch_up_since WHERE view = $1), 0)";

/// The keys of a view changed after a revision.
pub const CHANGED_AFTER: &str =
    "SELECT key, revision, deleted FROM changed_keys WHERE view = $1 AND revision > $2";

/// Moves each view from the revision it was locked at to its new one; the
/// caller checks the count.
pub const ADVANCE_VIEWS: &str = "UPDATE views AS v SET revision = x.r
    FROM unnest($1::text[], $2::int8[], $3::int8[]) AS x(n, r, f)
    WHERE v.view = x.n AND v.revision = x.f";

pub const UPSERT_COUNTERS: &str = "INSERT INTO counters (name, next)
    SELECT * FROM unnest($1::text[], $2::int8[])
    ON CONFLICT (name) DO UPDATE SET next = excluded.next";

/// Delivered at commit only: `view:revision` per changed view.
pub const NOTIFY: &str = "SELECT pg_notify('duality_events', p) FROM unnest($1::text[]) AS p";

/// A view and its revision in one statement, so in one snapshot.
pub const SNAPSHOT: &str = "SELECT COALESCE((SELECT revision FROM views WHERE view = $1), 0),
    d.key, d.doc
    FROM (VALUES (1)) AS one(x) LEFT JOIN docs AS d ON d.view = $1";

/// A view's documents in `str` order (bytewise, hence `COLLATE "C"`); the
/// revision is read in the same transaction.
pub const SCAN: &str =
    "SELECT key, doc, revision FROM docs WHERE view = $1 ORDER BY key COLLATE \"C\"";
/// A page of the outbox with the view's bounds, in one statement.
pub const EVENTS: &str = "SELECT c.current, o.oldest, e.revision, e.patch, e.prior
    FROM (SELECT COALESCE((SELECT revision FROM views WHERE view = $1), 0) AS current) AS c
    CROSS JOIN (SELECT MIN(revision) AS oldest FROM events WHERE view = $1) AS o
    LEFT JOIN LATERAL (
        SELECT revision, patch, prior FROM events
        WHERE view = $1 AND revision >= $2 AND revision <= c.current
        ORDER BY revision LIMIT $3) AS e ON true
    ORDER BY e.revision";

/// Committed events after a publisher's cursor, for its hub.
pub const EVENTS_AFTER: &str = "SELECT revision, patch, prior FROM events
    WHERE view = $1 AND revision > $2 AND revision <= $3
    ORDER BY revision LIMIT $4";

pub const TRY_TRIM_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";

/// A view's oldest events from revision `$4` on (at most `$3`), read along
/// the primary key: the first stamped at or after the cutoff `$2`, the
/// last, and how many.
pub const TRIM_HEAD: &str = "SELECT MIN(CASE WHEN created_ms >= $2 THEN revision END),
    MAX(revision), COUNT(*)
    FROM (SELECT revision, created_ms FROM events WHERE view = $1 AND revision >= $4
          ORDER BY revision LIMIT $3) AS head";

/// Deletes a prefix of a view's revisions.
pub const TRIM_BELOW: &str = "DELETE FROM events WHERE view = $1 AND revision < $2";

/// As [`TRIM_HEAD`], over a view's changed-key rows and when each was
/// written.
pub const TRIM_CHANGED_HEAD: &str = "SELECT MIN(CASE WHEN changed_ms >= $2 THEN revision END),
    MAX(revision), COUNT(*)
    FROM (SELECT revision, changed_ms FROM changed_keys WHERE view = $1 AND revision >= $4
          ORDER BY revision LIMIT $3) AS head";

/// Deletes a view's changed-key rows below a revision, answering the
/// newest one deleted.
pub const TRIM_CHANGED_BELOW: &str = "WITH gone AS (
        DELETE FROM changed_keys WHERE view = $1 AND revision < $2 RETURNING revision)
    SELECT COUNT(*), MAX(revision) FROM gone";

/// Moves the oldest position a view's changed-key rows answer for (never
/// back).
pub const RAISE_CATCH_UP_SINCE: &str = "INSERT INTO catch_up_since (view, revision) VALUES ($1, $2)
    ON CONFLICT (view) DO UPDATE
    SET revision = GREATEST(catch_up_since.revision, excluded.revision)";

pub const TRIM_KEYS: &str = "DELETE FROM idempotency WHERE created_ms < $1";
