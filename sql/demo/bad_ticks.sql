-- Ticks a broken feed sends: a NaN price, a zero and a negative price, a negative volume; two of them in a
-- chunk compressed by the compression policy (10 days old), the others in the current hour.
INSERT INTO public.stream_data (ts, symbol, price, volume) VALUES
    (now() - interval '10 days', 'AAPL', 'NaN', 100),
    (now() - interval '10 days', 'MSFT', -1, 100),
    (now() - interval '5 minutes', 'NVDA', 0, 100),
    (now() - interval '4 minutes', 'BTC-USD', 'Infinity', 0.5),
    (now() - interval '3 minutes', 'ETH-USD', 3400, -2);
