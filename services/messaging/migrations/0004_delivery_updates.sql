-- A delivery's row changes state two or three times while it is sent. With
-- no index over the columns that change, PostgreSQL updates it in place on
-- its page (a HOT update) instead of adding an entry to every index; the
-- free space left on each page makes room for that. Counting a campaign's
-- deliveries per state reads them through (campaign_id, person_id).
DROP INDEX deliveries_campaign_state;
ALTER TABLE deliveries SET (fillfactor = 70);
