-- Catalog schema: products, reviews, inventory, the event outbox and idempotency keys.
-- The API validates with Pydantic first; these constraints are the last line, so a
-- bug or a second writer (psql, a migration, the seed) cannot store what the API
-- would refuse.

CREATE TABLE products (
    id          uuid PRIMARY KEY,
    sku         text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    category    text NOT NULL,
    price       numeric(14, 2) NOT NULL,
    currency    text NOT NULL DEFAULT 'USD',
    features    double precision[],
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    version     integer NOT NULL DEFAULT 1,
    -- Full-text search over name and description (the `q` parameter), kept by
    -- PostgreSQL itself so no code path can forget to update it.
    search      tsvector GENERATED ALWAYS AS (
                    to_tsvector('english'::regconfig, name || ' ' || description)
                ) STORED,
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_sku_check CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{0,63}$'),
    CONSTRAINT products_name_check CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT products_description_check CHECK (char_length(description) <= 5000),
    CONSTRAINT products_category_check CHECK (char_length(category) BETWEEN 1 AND 64),
    CONSTRAINT products_price_check CHECK (price >= 0),
    CONSTRAINT products_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    -- Ten finite, non-negative floats. NaN sorts above Infinity in PostgreSQL, so
    -- "< Infinity" rules out both.
    CONSTRAINT products_features_check CHECK (
        features IS NULL OR (
            array_ndims(features) = 1
            AND cardinality(features) = 10
            AND array_position(features, NULL) IS NULL
            AND 0 <= ALL (features)
            AND 'Infinity'::double precision > ALL (features)
        )
    ),
    CONSTRAINT products_version_check CHECK (version >= 1),
    CONSTRAINT products_timestamps_check CHECK (updated_at >= created_at)
);

-- Keyset pagination (v2) and stable offset pages (v1) both order by (created_at, id).
CREATE INDEX products_created_at_id_idx ON products (created_at, id);
CREATE INDEX products_category_idx ON products (category, created_at, id);
CREATE INDEX products_search_idx ON products USING gin (search);

CREATE TABLE reviews (
    id          uuid PRIMARY KEY,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    rating      smallint NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    author      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reviews_rating_check CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT reviews_title_check CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT reviews_body_check CHECK (char_length(body) <= 5000),
    CONSTRAINT reviews_author_check CHECK (char_length(author) BETWEEN 1 AND 100)
);

CREATE INDEX reviews_product_idx ON reviews (product_id, created_at DESC, id DESC);

CREATE TABLE inventory (
    product_id  uuid PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    quantity    integer NOT NULL DEFAULT 0,
    reserved    integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inventory_quantity_check CHECK (quantity >= 0),
    CONSTRAINT inventory_reserved_check CHECK (reserved >= 0 AND reserved <= quantity)
);

-- Transactional outbox: a change and its CloudEvent commit together; the relay
-- publishes pending rows to JetStream in id order and stamps published_at.
-- event_id is the CloudEvent id, sent as Nats-Msg-Id so JetStream drops a resend.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    subject      text NOT NULL,
    payload      bytea NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    stream_seq   bigint
);

-- The relay only ever scans pending rows; this index stays as small as the backlog.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

-- Wake the relay at commit instead of waiting for its next poll. Statement-level,
-- and PostgreSQL folds identical notifications within a transaction into one.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalog_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotency-Key: the first successful response to (scope, key) is stored in the
-- same transaction as the change it describes, so a replay can never disagree with
-- the database.
CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status_code   smallint,
    response_body bytea,
    headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
