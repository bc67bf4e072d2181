-- Sample tables of a trading platform, with a few weeks of synthetic rows.
-- Plain tables: the stack turns them into hypertables (with their data). Re-running is harmless.

CREATE TABLE IF NOT EXISTS public.stream_data (
    ts      timestamptz      NOT NULL,
    symbol  text             NOT NULL,
    price   double precision NOT NULL,
    volume  double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS public.signals (
    ts        timestamptz      NOT NULL,
    signal_id bigint           NOT NULL,
    symbol    text             NOT NULL,
    strategy  text             NOT NULL,
    direction smallint         NOT NULL,
    strength  double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS public.signal_outcomes (
    ts          timestamptz      NOT NULL,
    signal_id   bigint           NOT NULL,
    symbol      text             NOT NULL,
    horizon_min integer          NOT NULL,
    pnl_bps     double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS public.feature_snapshot_versions (
    ts       timestamptz NOT NULL,
    symbol   text        NOT NULL,
    version  integer     NOT NULL,
    features jsonb       NOT NULL
);

-- 45 days of one-minute ticks for 8 symbols, ending at the current hour.
INSERT INTO public.stream_data (ts, symbol, price, volume)
SELECT t, s, 100 + 10 * sin(extract(epoch FROM t) / 3600 + i) + random(), round((random() * 1000)::numeric, 2)
FROM generate_series(date_trunc('hour', now()) - interval '45 days', date_trunc('hour', now()), interval '1 minute') AS t,
     unnest(ARRAY['AAPL','MSFT','NVDA','AMZN','GOOG','META','TSLA','BTC-USD']) WITH ORDINALITY AS sym(s, i)
WHERE NOT EXISTS (SELECT 1 FROM public.stream_data);

INSERT INTO public.signals (ts, signal_id, symbol, strategy, direction, strength)
SELECT t, row_number() OVER (ORDER BY t, s), s, (ARRAY['momentum','mean_revert','breakout'])[1 + (i % 3)],
       CASE WHEN random() < 0.5 THEN -1 ELSE 1 END, random()
FROM generate_series(date_trunc('hour', now()) - interval '45 days', date_trunc('hour', now()), interval '15 minutes') AS t,
     unnest(ARRAY['AAPL','MSFT','NVDA','AMZN','GOOG','META','TSLA','BTC-USD']) WITH ORDINALITY AS sym(s, i)
WHERE NOT EXISTS (SELECT 1 FROM public.signals);

INSERT INTO public.signal_outcomes (ts, signal_id, symbol, horizon_min, pnl_bps)
SELECT ts + interval '1 hour', signal_id, symbol, 60, (random() - 0.5) * 40
FROM public.signals
WHERE NOT EXISTS (SELECT 1 FROM public.signal_outcomes);

INSERT INTO public.feature_snapshot_versions (ts, symbol, version, features)
SELECT t, s, 1, jsonb_build_object('vol_1h', random(), 'ret_1h', random() - 0.5, 'spread_bps', random() * 5)
FROM generate_series(date_trunc('hour', now()) - interval '45 days', date_trunc('hour', now()), interval '1 hour') AS t,
     unnest(ARRAY['AAPL','MSFT','NVDA','AMZN','GOOG','META','TSLA','BTC-USD']) AS s
WHERE NOT EXISTS (SELECT 1 FROM public.feature_snapshot_versions);
