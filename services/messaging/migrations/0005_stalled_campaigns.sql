-- Send jobs can be lost to the broker: dead-lettered after a sender crashed
-- while holding them again and again, or purged by an operator. A sending
-- campaign whose due deliveries saw no claim for a while gets its jobs
-- enqueued again (claims make the extra jobs harmless).

-- When a queued delivery is due: null when its job went to the send queue,
-- later when it waits on a retry queue.
ALTER TABLE deliveries ADD COLUMN due_at timestamptz;

-- When jobs were last enqueued for the campaign's queued deliveries.
ALTER TABLE campaigns ADD COLUMN enqueued_at timestamptz;
