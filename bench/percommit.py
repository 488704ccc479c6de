#!/usr/bin/python3
"""percommit.py: the consumer a user would write by hand, as the baseline of
the `project` row: python3-confluent-kafka reads the topic, python3-avro
decodes each value (Confluent framing: skip 5 bytes), and python3-psycopg2
INSERTs it into a table shaped like funnel.events and COMMITs, one event per
transaction. It keeps no funnel model (leads, stage history): it does less
than leadflow-project, so the ratio flatters it.

    percommit.py --brokers B --topic T --group G --table SCHEMA.TABLE
                 --count N --schema lead_event.v2.avsc

Connects to PostgreSQL through libpq's PG* environment. Stops after N
events and prints one JSON object: {"events": N, "seconds": S} where S runs
from the first message received to the commit of the last.
"""
import argparse
import io
import json
import sys
import time

import avro.io
import avro.schema
import confluent_kafka
import psycopg2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()

    with open(a.schema) as f:
        reader = avro.io.DatumReader(avro.schema.parse(f.read()))
    conn = psycopg2.connect("")
    cur = conn.cursor()
    sql = (f"INSERT INTO {a.table} (event_id, lead_id, type, occurred_at,"
           " source, actor, payload, topic, partition, \"offset\")"
           " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
           " ON CONFLICT (event_id) DO NOTHING")
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": a.brokers, "group.id": a.group,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500})
    consumer.subscribe([a.topic])
    done, first, deadline = 0, None, time.monotonic() + a.timeout
    while done < a.count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        if first is None:
            first = time.monotonic()
        value = msg.value()
        rec = reader.read(avro.io.BinaryDecoder(io.BytesIO(value[5:])))
        cur.execute(sql, (rec["event_id"], rec["lead_id"],
                          rec["type"].lower(), rec["occurred_at"],
                          rec["source"], rec["actor"],
                          json.dumps(rec["payload"], default=str),
                          msg.topic(), msg.partition(), msg.offset()))
        conn.commit()
        done += 1
    secs = time.monotonic() - first if first is not None else 0.0
    consumer.close()
    conn.close()
    print(json.dumps({"events": done, "seconds": secs}))
    return 0 if done == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
