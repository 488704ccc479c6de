-- 004_replay.sql: what leadflow-replay needs in the funnel model.
-- Dead letters can be retried ("leadflow-replay dead-letters retry"): one
-- that now decodes is applied and marked resolved, with when and why; one
-- that still fails keeps its row, with the error of the latest attempt.
-- Rows are never deleted: the raw bytes stay for the record.

ALTER TABLE funnel.dead_letters
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN resolution  text,
    ADD COLUMN retried_at  timestamptz,
    ADD COLUMN retries     integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT dead_letters_resolution_check
        CHECK ((resolved_at IS NULL) = (resolution IS NULL));

COMMENT ON COLUMN funnel.dead_letters.error IS
    'why it could not be decoded: at arrival, then at the latest retry';
COMMENT ON COLUMN funnel.dead_letters.resolved_at IS
    'when a retry applied it (NULL: still open)';
COMMENT ON COLUMN funnel.dead_letters.resolution IS
    'what the retry did (the event it became) and the operator''s note';
COMMENT ON COLUMN funnel.dead_letters.retried_at IS
    'the latest retry, successful or not';
COMMENT ON COLUMN funnel.dead_letters.retries IS
    'how many retries it went through';

-- The open ones are what on-call looks at.
CREATE INDEX dead_letters_open_idx ON funnel.dead_letters (received_at)
    WHERE resolved_at IS NULL;
