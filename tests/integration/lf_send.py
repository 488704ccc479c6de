"""lf_send.py TOPIC: produce raw messages read from stdin, one per line,
"KEYHEX VALUEHEX" with "-" for a null key or value, through python3-kafka
(an independent Kafka client). Uses $LEADFLOW_BROKERS."""
import os
import sys

from kafka import KafkaProducer

producer = KafkaProducer(bootstrap_servers=os.environ["LEADFLOW_BROKERS"],
                         acks="all", api_version=(2, 5, 0),
                         max_request_size=4 << 20)
n = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    k, v = line.split(" ")
    key = None if k == "-" else bytes.fromhex(k)
    value = None if v == "-" else bytes.fromhex(v)
    producer.send(sys.argv[1], key=key, value=value).get(timeout=30)
    n += 1
producer.flush()
print(n)
