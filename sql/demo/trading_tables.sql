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

-- 45 days of trades ending at the current hour, shaped like a trading platform's feed (about 530k rows):
-- 24 US equities trading on weekdays 14:30-21:00 UTC, one trade every 45 s on average per symbol, and 2 crypto
-- pairs trading around the clock every 60 s on average; trade times irregular (microseconds), prices geometric
-- random walks from each symbol's own level (about 2% daily volatility) rounded to the cent, sizes in round lots
-- of 100 shares mostly with odd lots among them (crypto: fractional sizes).
INSERT INTO public.stream_data (ts, symbol, price, volume)
SELECT ts, symbol, round((p0 * exp(sum(z) OVER (PARTITION BY symbol ORDER BY ts)))::numeric, 2), volume
FROM (
    SELECT day + interval '14 hours 30 minutes' + (k + random()) * interval '45 seconds' AS ts, symbol, p0,
           0.0018 * (random() + random() + random() - 1.5) AS z,
           CASE WHEN random() < 0.7 THEN 100 * ceil(-2 * ln(1 - random())) ELSE ceil(random() * 99) END AS volume
    FROM generate_series(date_trunc('day', now()) - interval '45 days', date_trunc('day', now()), interval '1 day') AS day,
         generate_series(0, 519) AS k,
         (VALUES ('AAPL', 190.0), ('MSFT', 415.0), ('NVDA', 125.0), ('AMZN', 185.0), ('GOOG', 170.0),
                 ('META', 520.0), ('TSLA', 240.0), ('AVGO', 165.0), ('JPM', 210.0), ('V', 280.0),
                 ('UNH', 510.0), ('XOM', 115.0), ('JNJ', 155.0), ('WMT', 68.0), ('PG', 165.0), ('MA', 470.0),
                 ('HD', 360.0), ('COST', 880.0), ('NFLX', 680.0), ('AMD', 150.0), ('CRM', 270.0),
                 ('BAC', 40.0), ('KO', 63.0), ('PEP', 170.0)) AS eq(symbol, p0)
    WHERE extract(isodow FROM day) < 6
    UNION ALL
    SELECT t + random() * interval '60 seconds', symbol, p0, 0.0011 * (random() + random() + random() - 1.5),
           round((-0.2 * ln(1 - random()))::numeric, 4)
    FROM generate_series(date_trunc('hour', now()) - interval '45 days', date_trunc('hour', now()), interval '60 seconds') AS t,
         (VALUES ('BTC-USD', 64000.0), ('ETH-USD', 3400.0)) AS cr(symbol, p0)
) trades
WHERE ts < date_trunc('hour', now())
  AND NOT EXISTS (SELECT 1 FROM public.stream_data);

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
