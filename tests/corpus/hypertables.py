"""Hypertable definitions from public projects that use TimescaleDB, recorded as data.

Each entry: where it came from (repository and path), the table as that project creates it (`ddl`; `reduced`
when the project's own table definition was not at hand and only the columns its TimescaleDB statements name
are kept), the project's own TimescaleDB SQL (`theirs`, table names schema-qualified with {s}, spelled as
they wrote it), and the same thing declared with our resources (`ours`: keyword arguments of Hypertable,
CompressionSettings, CompressionPolicy, RetentionPolicy). `refused` marks what TimescaleDB itself refuses: the
fragment our preview must show.
"""

from __future__ import annotations

ZABBIX = "mirror/dd-wrt: src/router/zabbix/database/postgresql/timescaledb.sql"
ZABBIX_TABLES = "zvalcav/dotfiles: history_trends.sql (Zabbix 3.4 PostgreSQL table definitions)"


def _zabbix(table: str, ddl: str, reduced: bool = False) -> dict:
    return {
        "name": f"zabbix_{table}", "source": f"{ZABBIX}; table from {ZABBIX_TABLES}", "reduced": reduced,
        "ddl": [ddl.format(t=table)],
        "theirs": [f"SELECT create_hypertable('{{s}}.{table}', 'clock', chunk_time_interval => 86400, "
                   "migrate_data => true)"],
        "ours": {"hypertable": {"table": table, "time_column": "clock", "chunk_interval": 86400}},
    }


COMPRESSION_ERRORS = "timescale/timescaledb: tsl/test/sql/compression_errors.sql"


def _compression_errors(table: str, settings: str) -> dict:
    """Its tables with a quoted column name: segment by '"bacB toD",c', order by d (spelled as in `settings`)."""
    order_by = settings.rsplit("compress_orderby = ", 1)[1].strip("'")
    return {
        "name": f"timescaledb_compression_errors_{table}", "source": COMPRESSION_ERRORS, "reduced": False,
        "ddl": [f'create table {{s}}.{table} (a integer, "bacB toD" integer, c integer, d integer)'],
        "theirs": [f"select table_name from create_hypertable('{{s}}.{table}', 'a', chunk_time_interval=> 10)",
                   f"ALTER TABLE {{s}}.{table} set (timescaledb.compress, "
                   f"timescaledb.compress_segmentby = {settings})"],
        "ours": {"hypertable": {"table": table, "time_column": "a", "chunk_interval": 10},
                 "compression": {"segment_by": ["bacB toD", "c"], "order_by": [order_by]}},
    }


def _compression_errors_refused(case: str, theirs: str, ours: list[str], refused: str) -> dict:
    """One of that file's negative cases on its table `foo`: an order by TimescaleDB refuses."""
    return {
        "name": f"timescaledb_compression_errors_foo_{case}_refused", "source": COMPRESSION_ERRORS,
        "reduced": False,
        "ddl": ["create table {s}.foo (a integer, b integer, c integer, t text, p point)",
                "ALTER TABLE {s}.foo ADD CONSTRAINT chk_existing CHECK(b > 0)"],
        "theirs": ["select table_name from create_hypertable('{s}.foo', 'a', chunk_time_interval=> 10)",
                   f"ALTER TABLE {{s}}.foo set (timescaledb.compress, timescaledb.compress_orderby = '{theirs}')"],
        "ours": {"hypertable": {"table": "foo", "time_column": "a", "chunk_interval": 10},
                 "compression": {"order_by": ours}},
        "refused": refused,
    }


ENTRIES: list[dict] = [
    _zabbix("history", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                       "value numeric(16,4) DEFAULT '0.0000' NOT NULL, ns integer DEFAULT '0' NOT NULL)"),
    _zabbix("history_uint", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                            "value numeric(20) DEFAULT '0' NOT NULL, ns integer DEFAULT '0' NOT NULL)"),
    _zabbix("history_str", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                           "value varchar(255) DEFAULT '' NOT NULL, ns integer DEFAULT '0' NOT NULL)"),
    _zabbix("history_log", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                           "timestamp integer DEFAULT '0' NOT NULL, source varchar(64) DEFAULT '' NOT NULL, "
                           "severity integer DEFAULT '0' NOT NULL, value text DEFAULT '' NOT NULL, "
                           "logeventid integer DEFAULT '0' NOT NULL, ns integer DEFAULT '0' NOT NULL)"),
    _zabbix("history_text", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                            "value text DEFAULT '' NOT NULL, ns integer DEFAULT '0' NOT NULL)"),
    _zabbix("trends", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                      "num integer DEFAULT '0' NOT NULL, value_min numeric(16,4) DEFAULT '0.0000' NOT NULL, "
                      "value_avg numeric(16,4) DEFAULT '0.0000' NOT NULL, "
                      "value_max numeric(16,4) DEFAULT '0.0000' NOT NULL)", reduced=True),
    _zabbix("trends_uint", "CREATE TABLE {{s}}.{t} (itemid bigint NOT NULL, clock integer DEFAULT '0' NOT NULL, "
                           "num integer DEFAULT '0' NOT NULL, value_min numeric(20) DEFAULT '0' NOT NULL, "
                           "value_avg numeric(20) DEFAULT '0' NOT NULL, value_max numeric(20) DEFAULT '0' NOT NULL)",
            reduced=True),
    {
        "name": "pg_gatherer_metric", "source": "vadv/pg_gatherer: schema/schema.sql", "reduced": False,
        "ddl": ["create table {s}.metric (id bigserial, host uuid not null, plugin uuid not null, "
                "ts bigint not null default extract(epoch from current_timestamp)::bigint, snapshot bigint, "
                "value_bigint bigint, value_double float8, value_jsonb jsonb)",
                "create index on {s}.metric (ts, plugin, host)"],
        "theirs": ["select create_hypertable('{s}.metric', 'ts', chunk_time_interval => 43200)"],
        "ours": {"hypertable": {"table": "metric", "time_column": "ts", "chunk_interval": "43200"}},
    },
    {
        "name": "yoko_device_metric_series", "reduced": True,
        "source": "phanphu299/yoko-device-service: sql/no-trans/up/2022-03-31_002_create_hyper_table.sql",
        "ddl": ["CREATE TABLE {s}.device_metric_series (_ts timestamptz NOT NULL, device_id varchar(255) NOT NULL, "
                "metric_key varchar(255), value double precision)"],
        "theirs": ["SELECT create_hypertable('{s}.device_metric_series','_ts', 'device_id' ,4, "
                   "chunk_time_interval => INTERVAL '1 day')"],
        "ours": {"hypertable": {"table": "device_metric_series", "time_column": "_ts", "chunk_interval": "1 day",
                                "space_column": "device_id", "number_partitions": 4}},
    },
    {
        "name": "yoko_asset_attribute_runtime_series", "reduced": True,
        "source": "phanphu299/yoko-device-service: sql/no-trans/up/2022-03-31_002_create_hyper_table.sql",
        "ddl": ["CREATE TABLE {s}.asset_attribute_runtime_series (_ts timestamptz NOT NULL, "
                "asset_id uuid NOT NULL, attribute_id uuid, value double precision)"],
        "theirs": ["SELECT create_hypertable('{s}.asset_attribute_runtime_series','_ts', 'asset_id' , 4, "
                   "chunk_time_interval => INTERVAL '1 day')"],
        "ours": {"hypertable": {"table": "asset_attribute_runtime_series", "time_column": "_ts",
                                "chunk_interval": "1d", "space_column": "asset_id", "number_partitions": 4}},
    },
    {
        "name": "temperature_grpc_conditions", "reduced": False,
        "source": "hansaskov/temperature-gRPC: ingestion/migrations/0001_books_table.sql",
        "ddl": ["CREATE TABLE {s}.conditions (time TIMESTAMPTZ NOT NULL, temperature FLOAT NULL)"],
        "theirs": ["SELECT create_hypertable('{s}.conditions', by_range('time'))"],
        "ours": {"hypertable": {"table": "conditions", "time_column": "time"}},
    },
    {
        "name": "greenfinity_conditions", "reduced": False,
        "source": "GreenfinityFarms/database: scripts/01_create_tables.sql",
        "ddl": ["CREATE TABLE {s}.gf_conditions (time TIMESTAMPTZ NOT NULL, location TEXT NOT NULL, "
                "temperature DOUBLE PRECISION NULL, ph DOUBLE PRECISION NULL)"],
        "theirs": ["SELECT create_hypertable('{s}.gf_conditions', 'time')"],
        "ours": {"hypertable": {"table": "gf_conditions", "time_column": "time", "chunk_interval": "7 days"}},
    },
    {
        "name": "hongbomiao_iot_data", "reduced": False,
        "source": "hongbo-miao/hongbomiao.com: timescaledb/dummy_iot/migrations/000001_create_iot_data_table.up.sql",
        "ddl": ["create table {s}.iot_data (timestamp timestamptz not null, temperature numeric not null, "
                "humidity numeric not null, primary key (timestamp))"],
        "theirs": ["select create_hypertable('{s}.iot_data', 'timestamp')"],
        "ours": {"hypertable": {"table": "iot_data", "time_column": "timestamp", "chunk_interval": "P7D"}},
    },
    {
        "name": "dpiclimate_timeseries", "reduced": False, "source": "DPIclimate/broker: timescale/init.sql",
        "ddl": ["CREATE TABLE {s}.timeseries (broker_id TEXT NOT NULL, l_uid INTEGER NOT NULL, "
                "p_uid INTEGER NOT NULL, timestamp TIMESTAMPTZ NOT NULL, name TEXT, value NUMERIC)"],
        "theirs": ["SELECT create_hypertable('{s}.timeseries', 'timestamp')"],
        "ours": {"hypertable": {"table": "timeseries", "time_column": "timestamp"}},
    },
    {
        "name": "gosk_raw_data", "reduced": False,
        "source": "munnik/gosk: database/migrations/20220214102543_raw_data.up.sql",
        "ddl": ['CREATE TABLE {s}."raw_data" ("_time" TIMESTAMP WITH TIME ZONE NOT NULL, '
                '"_key" CHARACTER VARYING [] NOT NULL, "_value" BYTEA NOT NULL)'],
        "theirs": ["SELECT public.create_hypertable('{s}.raw_data', '_time')"],
        "ours": {"hypertable": {"table": "raw_data", "time_column": "_time", "chunk_interval": 604800000000}},
    },
    {
        "name": "pgext_ts_test", "reduced": False, "source": "pgsty/pgext: stub/timescaledb.md",
        "note": "its compress_chunk_time_interval setting is left out (CompressionSettings does not declare it)",
        "ddl": ["CREATE TABLE {s}.ts_test (id BIGINT PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, v INTEGER)"],
        "theirs": ["SELECT create_hypertable('{s}.ts_test', by_range('id'))"],
        "ours": {"hypertable": {"table": "ts_test", "time_column": "id"}},
    },
    _compression_errors("foo2", "'\"bacB toD\",c' , timescaledb.compress_orderby = 'd DESC'"),
    {
        "name": "yosai_anomaly_detections", "reduced": True,
        "source": "WSG23/yosai_intel_dashboard_fresh: migrations/timescale/003_setup_compression.sql",
        "ddl": ["CREATE TABLE {s}.anomaly_detections (detected_at TIMESTAMPTZ NOT NULL, anomaly_id uuid NOT NULL, "
                "score double precision)"],
        "theirs": ["SELECT create_hypertable('{s}.anomaly_detections', 'detected_at')",
                   "ALTER TABLE {s}.anomaly_detections SET (timescaledb.compress, "
                   "timescaledb.compress_orderby = 'detected_at DESC')",
                   "SELECT add_compression_policy('{s}.anomaly_detections', INTERVAL '30 days')"],
        "ours": {"hypertable": {"table": "anomaly_detections", "time_column": "detected_at"},
                 "compression": {"order_by": ["detected_at DESC"]},
                 "compression_policy": {"compress_after": "30d"}},
    },
    {
        "name": "quantum_bars_1m", "reduced": True,
        "source": "AustinZhu/quantum: datafeed/db/migrations/002_retention.up.sql",
        "note": "integer time in milliseconds; its integer_now function is in a migration not at hand",
        "ddl": ["CREATE TABLE {s}.bars_1m (ts bigint NOT NULL, symbol text NOT NULL, open double precision, "
                "close double precision)"],
        "theirs": ["SELECT create_hypertable('{s}.bars_1m', 'ts', chunk_time_interval => 86400000)",
                   "CREATE FUNCTION {s}.unix_now_ms() RETURNS bigint LANGUAGE sql STABLE "
                   "SET search_path = pg_catalog, pg_temp AS 'SELECT (extract(epoch FROM now()) * 1000)::bigint'",
                   "SELECT set_integer_now_func('{s}.bars_1m', '{s}.unix_now_ms')",
                   "ALTER TABLE {s}.bars_1m SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol')",
                   "SELECT add_compression_policy('{s}.bars_1m', 604800000::BIGINT, if_not_exists => TRUE)"],
        "ours": {"hypertable": {"table": "bars_1m", "time_column": "ts", "chunk_interval": 86400000,
                                "integer_now": {"function": "unix_now_ms",
                                                "sql": "SELECT (extract(epoch FROM now()) * 1000)::bigint"}},
                 "compression": {"segment_by": ["symbol"]},
                 "compression_policy": {"compress_after": 604800000}},
    },
    {
        "name": "quantum_ticks", "reduced": True,
        "source": "AustinZhu/quantum: datafeed/db/migrations/002_retention.up.sql",
        "ddl": ["CREATE TABLE {s}.ticks (ts bigint NOT NULL, symbol text NOT NULL, price double precision)"],
        "theirs": ["SELECT create_hypertable('{s}.ticks', 'ts', chunk_time_interval => 86400000)",
                   "CREATE FUNCTION {s}.ticks_now_ms() RETURNS bigint LANGUAGE sql STABLE "
                   "SET search_path = pg_catalog, pg_temp AS 'SELECT (extract(epoch FROM now()) * 1000)::bigint'",
                   "SELECT set_integer_now_func('{s}.ticks', '{s}.ticks_now_ms')",
                   "SELECT add_retention_policy('{s}.ticks', 2592000000::BIGINT, if_not_exists => TRUE)"],
        "ours": {"hypertable": {"table": "ticks", "time_column": "ts", "chunk_interval": 86400000,
                                "integer_now": {"function": "ticks_now_ms",
                                                "sql": "SELECT (extract(epoch FROM now()) * 1000)::bigint"}},
                 "retention_policy": {"drop_after": "2592000000"}},
    },
    _compression_errors("foo3", "'\"bacB toD\",c', timescaledb.compress_orderby = 'd DeSc NullS lAsT'"),
    {
        "name": "setu_machine_energy", "reduced": False,
        "source": "yaswanth1019/database_setu_testing: schema_new/silver/Tables/machine_energy.sql",
        "note": "its two foreign keys to master tables are left out (those tables are not part of it); its "
                "add_compression_policy(relation => ...) names a parameter TimescaleDB does not have (it is "
                "`hypertable`), so that call is spelled here with `hypertable =>`",
        "ddl": ["CREATE TABLE {s}.machine_energy (logical_date timestamp with time zone NOT NULL, "
                "company_iot_id integer NOT NULL, machine_iot_id integer NOT NULL, shift_id integer, "
                "shift_name text, category text, servo_energy numeric(12,3), spindle_energy numeric(12,3), "
                "total_energy numeric(12,3), created_at timestamp with time zone DEFAULT now())",
                "CREATE INDEX machine_energy_logical_date_idx ON {s}.machine_energy USING btree (logical_date DESC)"],
        "theirs": ["SELECT create_hypertable(relation => '{s}.machine_energy'::regclass, "
                   "time_column_name => 'logical_date'::name, chunk_time_interval => INTERVAL '1 month', "
                   "if_not_exists => TRUE)",
                   "ALTER TABLE {s}.machine_energy SET (timescaledb.compress, "
                   "timescaledb.compress_segmentby = 'company_iot_id, machine_iot_id, category', "
                   "timescaledb.compress_orderby = 'logical_date ASC')",
                   "SELECT add_compression_policy(hypertable => '{s}.machine_energy'::regclass, "
                   "compress_after => INTERVAL '3 months')"],
        "ours": {"hypertable": {"table": "machine_energy", "time_column": "logical_date", "chunk_interval": "1 month"},
                 "compression": {"segment_by": ["company_iot_id", "machine_iot_id", "category"],
                                 "order_by": ["logical_date ASC"]},
                 "compression_policy": {"compress_after": "3 months"}},
    },
    {
        "name": "coinwatch_alerts", "reduced": False,
        "source": "jakubzajkowski/coinwatch: coinwatch/src/main/resources/db/migration/V2__timescale_hypertables.sql; "
                  "table from V1__init_schema_tables.sql",
        "note": "its two foreign keys to users and crypto_currencies are left out",
        "ddl": ["CREATE TABLE {s}.alerts (id BIGSERIAL, user_id BIGINT NOT NULL, symbol VARCHAR(50) NOT NULL, "
                "crypto_currency_id BIGINT NOT NULL, change_percent NUMERIC(20, 2), old_price NUMERIC(20, 2), "
                "new_price NUMERIC(20, 2), created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                "CREATE INDEX idx_alerts_created_at ON {s}.alerts(created_at)"],
        "theirs": ["SELECT create_hypertable('{s}.alerts', 'created_at')",
                   "ALTER TABLE {s}.alerts SET (timescaledb.compress, "
                   "timescaledb.compress_orderby = 'created_at DESC', timescaledb.compress_segmentby = 'symbol')",
                   "SELECT add_compression_policy('{s}.alerts', INTERVAL '7 days')",
                   "SELECT add_retention_policy('{s}.alerts', INTERVAL '3 months')"],
        "ours": {"hypertable": {"table": "alerts", "time_column": "created_at"},
                 "compression": {"segment_by": ["symbol"], "order_by": ["created_at DESC"]},
                 "compression_policy": {"compress_after": "7 days"},
                 "retention_policy": {"drop_after": "3 months"}},
    },
    {
        "name": "yosai_access_events_refused", "reduced": False,
        "source": "WSG23/yosai_intel_dashboard_fresh: migrations/timescale/001_create_hypertables.sql",
        "ddl": ["CREATE TABLE {s}.access_events (time TIMESTAMPTZ NOT NULL, event_id UUID PRIMARY KEY, "
                "person_id VARCHAR(50), door_id VARCHAR(50), facility_id VARCHAR(50), access_result VARCHAR(20), "
                "badge_status VARCHAR(20), response_time_ms INTEGER, metadata JSONB)"],
        "theirs": ["SELECT create_hypertable('{s}.access_events', 'time', if_not_exists => TRUE)"],
        "ours": {"hypertable": {"table": "access_events", "time_column": "time"}},
        "refused": "access_events_pkey",
    },
    _compression_errors_refused("twice", "b, b", ["b", "b"], "column listed twice"),
    _compression_errors_refused("nulls", "c desc nulls", ["c desc nulls"], "not an ordering"),
]
