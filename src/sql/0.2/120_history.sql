-- conveyor 0.2: push events are append-only history. They may be deleted
-- (retention, or with their push) but never rewritten.

CREATE FUNCTION conveyor._push_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'push events cannot be changed'
        USING ERRCODE = 'feature_not_supported',
              DETAIL = format('Event %s of push %s is part of the push''s history.', OLD.id, OLD.push_id),
              HINT = 'Events are append-only; old history is removed by deleting it, never by rewriting it.';
END $$;
COMMENT ON FUNCTION conveyor._push_event_append_only() IS 'internal: refuses updates of push events';

CREATE TRIGGER push_event_append_only BEFORE UPDATE ON conveyor.push_event
    FOR EACH ROW EXECUTE FUNCTION conveyor._push_event_append_only();
