-- Listing the bounces of a delivery, a person or a campaign reads them
-- newest first a page at a time, keyed on (received_at, id): each listing
-- gets an index that ends with those columns, so a page is an index range
-- scan instead of a sort of everything the filter matches.
DROP INDEX bounces_delivery;
CREATE INDEX bounces_delivery ON bounces (delivery_id, received_at, id);
DROP INDEX bounces_person;
CREATE INDEX bounces_person ON bounces (tenant_id, person_id, received_at, id);
CREATE INDEX bounces_campaign_received ON bounces (campaign_id, received_at, id);
