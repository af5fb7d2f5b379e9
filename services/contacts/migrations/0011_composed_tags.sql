-- Imports and filters compose tags (NFC); tags stored by earlier versions
-- may hold combining accents ("adhe\u0301rent") that no filter matches.
-- Compose them, keeping the first of two spellings that become one.
-- normalize() needs a UTF8 database; in any other encoding no tag can hold
-- a combining accent, so there is nothing to do.
DO $$
BEGIN
    IF current_setting('server_encoding') = 'UTF8' THEN
        UPDATE people
        SET tags = ARRAY(
            SELECT normalize(u.tag, NFC)
            FROM unnest(tags) WITH ORDINALITY AS u(tag, n)
            GROUP BY 1
            ORDER BY min(u.n)
        )
        WHERE EXISTS (SELECT 1 FROM unnest(tags) AS t WHERE t IS NOT NFC NORMALIZED);
    END IF;
END
$$;
