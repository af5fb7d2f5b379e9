-- Consent per channel (email, sms, phone, post) and purpose ('' is the
-- channel's general consent; newsletter, campaign, fundraising, events).
-- consent_events stays the append-only ledger and gains what a statement
-- must prove: its purpose, legal basis (GDPR art. 6) and the notice shown.
-- 'pending' is a double opt-in request waiting for the person's confirmation.
ALTER TABLE consent_events
    ADD COLUMN purpose text NOT NULL DEFAULT '',
    ADD COLUMN legal_basis text NOT NULL DEFAULT 'consent',
    ADD COLUMN notice text NOT NULL DEFAULT '',
    DROP CONSTRAINT consent_events_state_check,
    ADD CONSTRAINT consent_events_state_check
        CHECK (state IN ('granted', 'withdrawn', 'pending')),
    ADD CONSTRAINT consent_events_channel_check
        CHECK (channel IN ('email', 'sms', 'phone', 'post')),
    ADD CONSTRAINT consent_events_legal_basis_check
        CHECK (legal_basis IN ('consent', 'contract', 'legal_obligation', 'vital_interests',
                               'public_task', 'legitimate_interests'));

-- The current state per (person, channel, purpose), written only by
-- consent::record from the ledger's rules. A person without a row has none.
-- people.email_consent* mirrors the row of (email, '') for the readers
-- that predate this table.
CREATE TABLE consents (
    tenant_id uuid NOT NULL,
    person_id uuid NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    channel text NOT NULL,
    purpose text NOT NULL,
    state text NOT NULL CHECK (state IN ('granted', 'withdrawn', 'pending')),
    legal_basis text NOT NULL,
    source text NOT NULL,
    notice text NOT NULL,
    occurred_at timestamptz NOT NULL,
    evidence jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_id, channel, purpose)
);
CREATE INDEX consents_state ON consents (tenant_id, channel, purpose, state, legal_basis);

ALTER TABLE people DROP CONSTRAINT people_email_consent_check,
    ADD CONSTRAINT people_email_consent_check
        CHECK (email_consent IN ('none', 'granted', 'withdrawn', 'pending'));

INSERT INTO consents (tenant_id, person_id, channel, purpose, state, legal_basis, source,
                      notice, occurred_at, evidence)
SELECT tenant_id, id, 'email', '', email_consent, 'consent', COALESCE(email_consent_source, ''),
       '', COALESCE(email_consent_at, updated_at), COALESCE(email_consent_evidence, '{}')
FROM people WHERE email_consent <> 'none';

-- An import declares the legal basis of the consent its rows state and the
-- notice those people were shown; every consent event of the import carries them.
ALTER TABLE imports
    ADD COLUMN legal_basis text NOT NULL DEFAULT 'consent',
    ADD COLUMN notice text NOT NULL DEFAULT '';

-- The organization's policy: a legal basis it does not accept on a channel.
-- Statements on that basis are refused there, and grants already recorded on
-- it stop counting in segments as soon as the row exists.
CREATE TABLE consent_policy (
    tenant_id uuid NOT NULL,
    channel text NOT NULL,
    legal_basis text NOT NULL,
    PRIMARY KEY (tenant_id, channel, legal_basis)
);
