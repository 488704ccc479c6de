-- 015_ref_loading.sql: funnel_ref's tables load as docs/analysts.md says,
-- with psql's plain `\copy ... csv header`.
-- - CSV reads an empty field as NULL, so a channel's spend not tied to a
--   campaign (`web,,2024-03-01,...`, as any CSV writer puts '') was refused
--   by campaign's NOT NULL unless the load said FORCE_NOT_NULL (campaign).
--   A NULL campaign is now stored as '' (a BEFORE trigger: NOT NULL is
--   checked after it), in a load, an INSERT or an UPDATE alike.
-- - leadflow_marketing_ops may also INSERT the settings row (an upsert
--   needs it); it still may not DELETE it, which would leave the money
--   views without a reporting currency.
-- Made in funnel_ref, which rebuild and promote leave alone, and written to
-- be applied again to a database whose funnel schema was migrated anew.
CREATE OR REPLACE FUNCTION funnel_ref.campaign_costs_blank_campaign()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.campaign := coalesce(NEW.campaign, '');
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION funnel_ref.campaign_costs_blank_campaign() IS
    'Stores a NULL campaign (an empty CSV field) as '''': spend of a channel '
    'not tied to a campaign.';

CREATE OR REPLACE TRIGGER campaign_costs_blank_campaign
    BEFORE INSERT OR UPDATE ON funnel_ref.campaign_costs
    FOR EACH ROW EXECUTE FUNCTION funnel_ref.campaign_costs_blank_campaign();

GRANT INSERT ON funnel_ref.settings TO leadflow_marketing_ops;
