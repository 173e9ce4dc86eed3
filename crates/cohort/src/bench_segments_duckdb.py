"""DuckDB side of `cohort bench segments`: the benchmark's CSV files are
written as Parquet (timed apart, as loading), then each benchmark rule runs
as hand-written SQL with the same semantics and the same `now` as Cohort's
compiled query, warm, best of N. Prints one JSON object on stdout.

usage: python3 bench_segments_duckdb.py <data dir> <now_us> <runs>
"""

import json
import os
import sys
import time

import duckdb

DAY = 86_400_000_000


def main():
    data, now, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    con = duckdb.connect()
    tables = ["events", "cluster_events", "orders", "order_lines", "profiles", "profile_tags"]
    started = time.perf_counter()
    for t in tables:
        csv = os.path.join(data, t + ".csv")
        parquet = os.path.join(data, t + ".parquet")
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv}', header = true, auto_detect = true, "
            f"quote = '\"', escape = '\"', sample_size = -1)) TO '{parquet}' (FORMAT parquet)"
        )
        os.remove(csv)
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{parquet}')")
    load_s = time.perf_counter() - started
    # The profile's track events, as the compiled SQL joins them.
    con.execute(
        "CREATE VIEW ev AS SELECT ce.profile_id, e.event, e.timestamp_us, e.payload "
        "FROM events e JOIN cluster_events ce ON ce.seq = e.seq "
        "WHERE e.type = 'track' AND e.erased_at_us IS NULL AND ce.profile_id IS NOT NULL"
    )
    within = lambda days: now - days * DAY  # noqa: E731
    rules = {
        "1": f"""
            SELECT count(*) FROM profiles p
            WHERE p.profile_id IN (SELECT profile_id FROM ev WHERE event = 'Order Completed'
                                   GROUP BY profile_id HAVING count(*) = 2)
              AND p.profile_id NOT IN (SELECT profile_id FROM ev WHERE event = 'Email Opened'
                                       AND timestamp_us >= {within(30)})""",
        "2": f"""
            SELECT count(*) FROM profiles p
            WHERE p.profile_id IN (SELECT profile_id FROM orders WHERE purchased = 1
                                   GROUP BY profile_id HAVING sum(net_total_e4) > 2000000)
              AND p.last_seen_us >= {within(90)}""",
        "3": f"""
            SELECT count(*) FROM profiles p
            WHERE p.profile_id IN (SELECT profile_id FROM ev WHERE event = 'Product Viewed'
                                     AND timestamp_us >= {within(7)}
                                     AND json_type(payload, '$.properties.category') = 'VARCHAR'
                                     AND json_extract_string(payload, '$.properties.category') = 'Shoes'
                                   GROUP BY profile_id HAVING count(*) >= 3)
              AND p.profile_id NOT IN (SELECT profile_id FROM ev WHERE event = 'Order Completed'
                                       AND timestamp_us >= {within(7)})""",
        "4": """
            SELECT count(*) FROM profiles p
            WHERE (json_type(p.doc, '$.traits.country') = 'VARCHAR'
                   AND json_extract_string(p.doc, '$.traits.country') = 'DE')
               OR (p.profile_id IN (SELECT profile_id FROM profile_tags WHERE tag = 'vip')
                   AND p.profile_id IN (SELECT profile_id FROM orders WHERE purchased = 1
                                        GROUP BY profile_id HAVING count(*) >= 3))""",
        "5": f"""
            SELECT count(*) FROM profiles p
            WHERE p.profile_id IN (SELECT profile_id FROM orders WHERE purchased = 1
                                   GROUP BY profile_id HAVING count(*) >= 2)
              AND p.profile_id NOT IN (SELECT profile_id FROM ev WHERE event = 'Email Opened'
                                       AND timestamp_us >= {within(60)})""",
    }
    out = {"duckdb": duckdb.__version__, "load_s": load_s, "rules": {}}
    for name, sql in rules.items():
        count = con.execute(sql).fetchone()[0]  # warm-up
        seconds = []
        for _ in range(runs):
            started = time.perf_counter()
            got = con.execute(sql).fetchone()[0]
            seconds.append(time.perf_counter() - started)
            assert got == count
        out["rules"][name] = {"count": count, "seconds": seconds}
    print(json.dumps(out))


main()
