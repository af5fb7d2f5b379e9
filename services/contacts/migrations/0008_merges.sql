-- One record per person.
--
-- people.email and people.phone stay the primary ones (messaging sends to
-- the primary address); person_emails and person_phones keep the others,
-- mostly those a merge brought. A secondary address is unique in the
-- organization like a primary one (the merge code keeps the two sets apart);
-- a number may be shared, as primary numbers are for people with an e-mail.
CREATE TABLE person_emails (
    tenant_id uuid NOT NULL,
    email_key text NOT NULL,
    email text NOT NULL,
    person_id uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email_key)
);
CREATE INDEX person_emails_person ON person_emails (person_id);

CREATE TABLE person_phones (
    tenant_id uuid NOT NULL,
    person_id uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    phone text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, phone)
);
CREATE INDEX person_phones_phone ON person_phones (tenant_id, phone);

-- A name or address as duplicate detection compares it: lower case, accents
-- (combining marks after compatibility decomposition), spaces and
-- punctuation removed. "Hélène  D'Œuvre" and "helene doeuvre" fold alike.
CREATE FUNCTION muster_fold(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN regexp_replace(
        replace(replace(replace(lower(normalize(value, NFKD)), 'œ', 'oe'), 'æ', 'ae'), 'ß', 'ss'),
        E'[\\u0300-\\u036f[:space:][:punct:]’‘«»–—·]', '', 'g');

-- First and last name folded, NULL unless both are there. Each name is
-- folded once: imports pay for this key on every row they write.
CREATE FUNCTION muster_name_key(first_name text, last_name text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN nullif(muster_fold(first_name), '') || ' ' || nullif(muster_fold(last_name), '');

-- What detection looks people up by. The name index has no predicate, which
-- would compute the key a second time on every insert.
CREATE INDEX people_phone ON people (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX people_name_key ON people (tenant_id, muster_name_key(first_name, last_name));

-- The audit of every merge: who asked (or which rule), why, when, and the
-- merged record as it was (emptied when the survivor is erased). The merged
-- id keeps answering through this table.
CREATE TABLE merges (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    survivor_id uuid NOT NULL,
    merged_id uuid NOT NULL,
    reason text NOT NULL,
    merged_by text NOT NULL,
    snapshot jsonb NOT NULL,
    merged_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX merges_merged ON merges (tenant_id, merged_id);
CREATE INDEX merges_survivor ON merges (tenant_id, survivor_id);

-- Which kinds of exact duplicates an organization merges without review. No
-- row for a kind: external_id merges, the others are reviewed.
CREATE TABLE duplicate_rules (
    tenant_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('phone', 'external_id', 'name_address')),
    automatic boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);

-- Pairs of people that may be one, the lower id first. A dismissed pair
-- stays dismissed when detection finds it again.
CREATE TABLE duplicates (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    person_a uuid NOT NULL,
    person_b uuid NOT NULL,
    reasons text[] NOT NULL,
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'dismissed', 'merged')),
    found_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    decided_by text,
    CHECK (person_a < person_b),
    UNIQUE (tenant_id, person_a, person_b)
);
CREATE INDEX duplicates_state ON duplicates (tenant_id, state, id);
CREATE INDEX duplicates_person_b ON duplicates (tenant_id, person_b);
