-- Imports look up, for each row with an e-mail address and a phone number,
-- the people without e-mail on that number (a person known by number alone
-- whom the row's address may join). The index on all numbers would read
-- every person with e-mail sharing it: this one holds only the few without.
CREATE INDEX people_phone_without_email ON people (tenant_id, phone)
    WHERE email_key IS NULL;
