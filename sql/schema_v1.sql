-- masqlog's PostgreSQL schema, version 1 (`masqlog db init` runs this file;
-- it is embedded in the masqlog binary). Every statement is idempotent, so
-- running it again on a version-1 database changes nothing.
--
-- One table, masqlog.flow_log, partitioned by day on `at`, holds every
-- line a router's masqlog plugin wrote: one row per line, never updated.
-- The view masqlog.flows joins start, ident and end rows into one row per
-- connection. A batch sent again (a replay from the spool, a retry after
-- a dropped connection) inserts nothing twice: a sealed row is known by
-- its writer, run and sequence number, and masqlog.seal_ledger keeps the
-- ranges of sequence numbers committed, checked and extended in the
-- batch's own transaction (masqlog.claim_seqs); a row without a seal is
-- known by (at, digest), a unique key that holds those rows only.

CREATE SCHEMA IF NOT EXISTS masqlog;

CREATE TABLE IF NOT EXISTS masqlog.schema_version (
    version integer NOT NULL,
    installed timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS masqlog.flow_log (
    -- when the line's event happened: the end time of an end line, the
    -- start time of a start line, the start of a gap; the write time of
    -- the line for the rest. The partition key.
    at            timestamptz NOT NULL,
    -- the line's syslog HOSTNAME and TAG: which router and instance wrote it
    router        text NOT NULL,
    instance      text NOT NULL,
    -- start, end, update, gap, chain (a sealing chain record) or other
    event         text NOT NULL,
    nat           text,
    proto         smallint,
    conntrack_id  bigint,
    client_ip     inet,
    client_port   integer,
    masq_ip       inet,
    masq_port     integer,
    remote_ip     inet,
    remote_port   integer,
    remote_hash   text,
    start_at      timestamptz,
    end_at        timestamptz,
    out_pkts      bigint,
    out_bytes     bigint,
    in_pkts       bigint,
    in_bytes      bigint,
    ident_status  text,
    ident_user    bytea,
    -- the seal (when the plugin seals): writer, run, sequence number, MAC
    seal_writer   text,
    seal_run      bigint,
    seal_seq      bigint,
    seal_mac      bytea,
    -- the exact message as the plugin formatted it: what `masqlog lookup
    -- --db` reads back and `masqlog verify` checks
    line          text NOT NULL,
    -- rows without a seal only: the first 16 bytes of the SHA-256 of
    -- `line`, made by the writer; with `at`, the key that keeps such a
    -- line sent twice once
    digest        bytea
) PARTITION BY RANGE (at);

-- Two indexes on the write path, no more: each costs every insert.
-- The no-duplicate key of the rows without a seal (it must hold the
-- partition key); sealed rows are not in it (see masqlog.seal_ledger).
CREATE UNIQUE INDEX IF NOT EXISTS flow_log_unsealed_key ON masqlog.flow_log (at, digest)
    WHERE digest IS NOT NULL;
-- Lookup by public address, port and time.
CREATE INDEX IF NOT EXISTS flow_log_masq ON masqlog.flow_log (masq_ip, masq_port, at);
-- The gap records of a period (lookup's "the log is incomplete" note):
-- partial, so it holds only the few gap rows.
CREATE INDEX IF NOT EXISTS flow_log_gaps ON masqlog.flow_log (at) WHERE event = 'gap';
-- The flows view joins a day's start and end rows by hashing them; an
-- index on (router, conntrack_id, start_at) would serve joins of single
-- connections but costs every insert: create it on a reporting replica.

-- The ranges of sequence numbers of each sealed writer's run whose rows
-- are committed: a range per batch, merged with its neighbours, so a
-- writer that delivers in order keeps one row per run.
CREATE TABLE IF NOT EXISTS masqlog.seal_ledger (
    writer    text NOT NULL,
    run       bigint NOT NULL,
    first_seq bigint NOT NULL,
    last_seq  bigint NOT NULL,
    PRIMARY KEY (writer, run, first_seq),
    CHECK (first_seq <= last_seq)
);

-- Called in the transaction that inserts a batch, before its rows: for
-- writer `w`'s run `r` and the ranges firsts[i] ..= lasts[i] of sequence
-- numbers the batch holds (every number of a range is in the batch),
-- returns the committed ranges that overlap them (the caller leaves their
-- rows out), and records the batch's ranges as committed, merged with
-- their neighbours. A lock on (w, r) held to the end of the transaction
-- serializes two transactions of the same run (a retry on a new
-- connection while the old one's transaction still runs): the second
-- sees what the first committed. If the batch's transaction fails, its
-- ranges are not recorded.
CREATE OR REPLACE FUNCTION masqlog.claim_seqs(w text, r bigint, firsts bigint[], lasts bigint[])
RETURNS TABLE (first_seq bigint, last_seq bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, masqlog
AS $fn$
DECLARE
    i integer;
    lo bigint;
    hi bigint;
BEGIN
    IF coalesce(array_length(firsts, 1), 0) <> coalesce(array_length(lasts, 1), 0) THEN
        RAISE EXCEPTION 'masqlog.claim_seqs: % firsts, % lasts', array_length(firsts, 1), array_length(lasts, 1);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(w, r));
    RETURN QUERY
        SELECT DISTINCT l.first_seq, l.last_seq
        FROM masqlog.seal_ledger l, unnest(firsts, lasts) AS b(f, t)
        WHERE l.writer = w AND l.run = r AND l.first_seq <= b.t AND l.last_seq >= b.f
        ORDER BY 1;
    FOR i IN 1 .. coalesce(array_length(firsts, 1), 0) LOOP
        IF firsts[i] > lasts[i] THEN
            RAISE EXCEPTION 'masqlog.claim_seqs: range % .. % is empty', firsts[i], lasts[i];
        END IF;
        SELECT least(min(l.first_seq), firsts[i]), greatest(max(l.last_seq), lasts[i])
            INTO lo, hi
            FROM masqlog.seal_ledger l
            WHERE l.writer = w AND l.run = r
              AND l.first_seq <= lasts[i] + 1 AND l.last_seq >= firsts[i] - 1;
        DELETE FROM masqlog.seal_ledger l
            WHERE l.writer = w AND l.run = r
              AND l.first_seq <= lasts[i] + 1 AND l.last_seq >= firsts[i] - 1;
        INSERT INTO masqlog.seal_ledger VALUES (w, r, lo, hi);
    END LOOP;
END
$fn$;

-- The safety net: a row whose day has no partition lands here instead of
-- failing. `masqlog db status` warns when it holds rows.
CREATE TABLE IF NOT EXISTS masqlog.flow_log_default PARTITION OF masqlog.flow_log DEFAULT;

-- Creates the daily partitions from day `first` to day `last` (UTC) that
-- do not exist yet; returns how many it created. A day whose rows already
-- sit in the default partition is skipped with a WARNING (creating it
-- would fail). SECURITY DEFINER: the routers' insert-only role may call it.
CREATE OR REPLACE FUNCTION masqlog.ensure_partitions(first date, last date)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, masqlog
AS $fn$
DECLARE
    d date := first;
    made integer := 0;
    name text;
    lo timestamptz;
    hi timestamptz;
BEGIN
    IF last - first > 400 THEN
        RAISE EXCEPTION 'masqlog.ensure_partitions: % to % is more than 400 days', first, last;
    END IF;
    WHILE d <= last LOOP
        name := 'flow_log_' || to_char(d, 'YYYYMMDD');
        IF to_regclass('masqlog.' || name) IS NULL THEN
            lo := (d::timestamp AT TIME ZONE 'UTC');
            hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
            IF EXISTS (SELECT 1 FROM masqlog.flow_log_default WHERE at >= lo AND at < hi) THEN
                RAISE WARNING 'masqlog: the default partition holds rows of %; partition % not created', d, name;
            ELSE
                -- Two writers may race here: the loser's error is caught.
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE masqlog.%I PARTITION OF masqlog.flow_log FOR VALUES FROM (%L) TO (%L)',
                        name, lo, hi);
                    made := made + 1;
                EXCEPTION WHEN duplicate_table THEN
                    NULL;
                END;
            END IF;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN made;
END
$fn$;

-- Drops the daily partitions of days before `keep_from` (UTC); returns
-- their names. Retention never deletes rows one by one.
CREATE OR REPLACE FUNCTION masqlog.drop_partitions_before(keep_from date)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, masqlog
AS $fn$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = 'masqlog' AND p.relname = 'flow_log'
          AND c.relname ~ '^flow_log_[0-9]{8}$'
          AND to_date(substr(c.relname, 10), 'YYYYMMDD') < keep_from
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE masqlog.%I', r.relname);
        RETURN NEXT r.relname;
    END LOOP;
END
$fn$;

-- One row per connection: the start line joined with its end line (and
-- an ident line, when the plugin wrote one), by router, conntrack id and
-- start time. Nothing is updated in place: the join happens at read time.
CREATE OR REPLACE VIEW masqlog.flows AS
SELECT
    COALESCE(s.router, e.router)              AS router,
    COALESCE(s.conntrack_id, e.conntrack_id)  AS conntrack_id,
    COALESCE(s.proto, e.proto)                AS proto,
    COALESCE(s.nat, e.nat)                    AS nat,
    COALESCE(s.client_ip, e.client_ip)        AS client_ip,
    COALESCE(s.client_port, e.client_port)    AS client_port,
    COALESCE(s.masq_ip, e.masq_ip)            AS masq_ip,
    COALESCE(s.masq_port, e.masq_port)        AS masq_port,
    COALESCE(s.remote_ip, e.remote_ip)        AS remote_ip,
    COALESCE(s.remote_port, e.remote_port)    AS remote_port,
    COALESCE(s.start_at, e.start_at)          AS start_at,
    e.end_at,
    e.out_pkts, e.out_bytes, e.in_pkts, e.in_bytes,
    COALESCE(e.ident_status, i.ident_status)  AS ident_status,
    COALESCE(e.ident_user, i.ident_user)      AS ident_user
FROM (SELECT * FROM masqlog.flow_log WHERE event = 'start') s
FULL JOIN (SELECT * FROM masqlog.flow_log WHERE event = 'end') e
    ON e.router = s.router AND e.conntrack_id = s.conntrack_id AND e.start_at = s.start_at
LEFT JOIN LATERAL (
    SELECT x.ident_status, x.ident_user FROM masqlog.flow_log x
    WHERE x.event = 'ident' AND x.router = COALESCE(s.router, e.router)
      AND x.conntrack_id = COALESCE(s.conntrack_id, e.conntrack_id)
      AND x.start_at = COALESCE(s.start_at, e.start_at)
    LIMIT 1
) i ON true;

-- The roles: routers may only add rows (and create partitions through the
-- function); the abuse desk may only read. NOLOGIN groups: give each
-- router and each desk member its own login role in one of them
-- (`masqlog db init` prints how).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'masqlog_writer') THEN
        CREATE ROLE masqlog_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'masqlog_reader') THEN
        CREATE ROLE masqlog_reader NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA masqlog TO masqlog_writer, masqlog_reader;
GRANT SELECT ON masqlog.schema_version TO masqlog_writer, masqlog_reader;
GRANT INSERT ON masqlog.flow_log TO masqlog_writer;
GRANT SELECT ON masqlog.flow_log, masqlog.flows TO masqlog_reader;
REVOKE ALL ON FUNCTION masqlog.ensure_partitions(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION masqlog.ensure_partitions(date, date) TO masqlog_writer;
REVOKE ALL ON FUNCTION masqlog.drop_partitions_before(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION masqlog.claim_seqs(text, bigint, bigint[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION masqlog.claim_seqs(text, bigint, bigint[], bigint[]) TO masqlog_writer;
GRANT SELECT ON masqlog.seal_ledger TO masqlog_reader;

INSERT INTO masqlog.schema_version (version)
SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM masqlog.schema_version);
