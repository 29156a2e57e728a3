-- Switchboard's storage in PostgreSQL, schema version 1: one table per
-- kind of record (see store-postgres/src/lib.rs). Every name column holds
-- the name as given, with U+0000 and U+FFFF escaped (src/names.rs); it is
-- compared byte by byte (COLLATE "C").

-- Accounts, with the counters the other kinds hang on them: the last
-- offline id handed out, what the offline queue holds (messages and
-- bytes, for the quota without a scan) and the roster version.
CREATE TABLE accounts (
    host              text COLLATE "C" NOT NULL,
    username          text COLLATE "C" NOT NULL,
    offline_last      bigint NOT NULL DEFAULT 0,
    offline_messages  bigint NOT NULL DEFAULT 0,
    offline_bytes     bigint NOT NULL DEFAULT 0,
    roster_ver        bigint NOT NULL DEFAULT 0,
    created       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, username)
);

-- SCRAM credentials (never a password), in the order given.
CREATE TABLE credentials (
    host        text COLLATE "C" NOT NULL,
    username    text COLLATE "C" NOT NULL,
    position    integer NOT NULL,
    hash        text NOT NULL,
    salt        bytea NOT NULL,
    iterations  integer NOT NULL,
    stored_key  bytea NOT NULL,
    server_key  bytea NOT NULL,
    PRIMARY KEY (host, username, position),
    FOREIGN KEY (host, username) REFERENCES accounts ON DELETE CASCADE
);

CREATE TABLE roster_items (
    host          text COLLATE "C" NOT NULL,
    username      text COLLATE "C" NOT NULL,
    position      integer NOT NULL,
    jid           text COLLATE "C" NOT NULL,
    name          text,
    subscription  text NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask           boolean NOT NULL,
    approved      boolean NOT NULL,
    added         boolean NOT NULL,
    groups        text[] NOT NULL,
    PRIMARY KEY (host, username, position),
    UNIQUE (host, username, jid),
    FOREIGN KEY (host, username) REFERENCES accounts ON DELETE CASCADE
);

-- Inbound subscription requests awaiting an answer: the presence stanza
-- as XML.
CREATE TABLE roster_pending (
    host      text COLLATE "C" NOT NULL,
    username  text COLLATE "C" NOT NULL,
    position  integer NOT NULL,
    jid       text COLLATE "C" NOT NULL,
    stanza    text NOT NULL,
    PRIMARY KEY (host, username, position),
    FOREIGN KEY (host, username) REFERENCES accounts ON DELETE CASCADE
);

-- The offline queue: ids per account from accounts.offline_last.
CREATE TABLE offline (
    host      text COLLATE "C" NOT NULL,
    username  text COLLATE "C" NOT NULL,
    id        bigint NOT NULL,
    stanza    text NOT NULL,
    bytes     integer NOT NULL,
    PRIMARY KEY (host, username, id),
    FOREIGN KEY (host, username) REFERENCES accounts ON DELETE CASCADE
);

-- Account data (vCard, private XML, last activity, …): one element each.
CREATE TABLE account_data (
    host      text COLLATE "C" NOT NULL,
    username  text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    doc       text NOT NULL,
    PRIMARY KEY (host, username, key),
    FOREIGN KEY (host, username) REFERENCES accounts ON DELETE CASCADE
);

-- Host data (the message of the day): one element each.
CREATE TABLE host_data (
    host  text COLLATE "C" NOT NULL,
    key   text COLLATE "C" NOT NULL,
    doc   text NOT NULL,
    PRIMARY KEY (host, key)
);

-- Message archives of accounts and rooms. Archive order is seq; `with_bare`
-- is `with` up to its first '/', `domain` the owner after its '@' (the
-- owner itself without one), for retention.
CREATE TABLE archive (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner      text COLLATE "C" NOT NULL,
    domain     text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    ts         bigint NOT NULL,
    with_full  text COLLATE "C" NOT NULL,
    with_bare  text COLLATE "C" NOT NULL,
    stanza     text NOT NULL
);
CREATE INDEX archive_owner_seq ON archive (owner, seq);
CREATE INDEX archive_owner_id ON archive (owner, id);
CREATE INDEX archive_owner_ts ON archive (owner, ts);
CREATE INDEX archive_owner_bare ON archive (owner, with_bare, seq);
CREATE INDEX archive_owner_full ON archive (owner, with_full, seq);
CREATE INDEX archive_domain_ts ON archive (domain, ts);

-- How many entries each archive holds: the count of an unfiltered query
-- (RSM <count/>) without counting rows.
CREATE TABLE archive_counts (
    owner    text COLLATE "C" PRIMARY KEY,
    entries  bigint NOT NULL
);

-- Services' own records, opaque values.
CREATE TABLE service_data (
    service     text COLLATE "C" NOT NULL,
    collection  text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    value       bytea NOT NULL,
    PRIMARY KEY (service, collection, key)
);

-- Blobs: the metadata of each committed blob, and its bytes in chunks
-- under the upload number its writer drew. Chunks without a blob are an
-- upload in progress, or one abandoned (removed after an hour).
CREATE SEQUENCE blob_uploads;
CREATE TABLE blobs (
    scope         text COLLATE "C" NOT NULL,
    id            text COLLATE "C" NOT NULL,
    owner         text NOT NULL,
    name          text NOT NULL,
    content_type  text NOT NULL,
    size          bigint NOT NULL,
    created       bigint NOT NULL,
    expires       bigint,
    upload        bigint NOT NULL UNIQUE,
    PRIMARY KEY (scope, id)
);
CREATE TABLE blob_chunks (
    upload   bigint NOT NULL,
    n        integer NOT NULL,
    bytes    bytea NOT NULL,
    written  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload, n)
);
