"""Reads one topic of a pitcrew recording with the `mcap` package (a third-party reader)
and prints it as one JSON object: the topic's schema name and encoding, and its messages
in order, each as {"log_time": ns, "message": the decoded JSON}.

    python3 tests/python/read_topic.py FILE.mcap /sim/pose
"""

import json
import sys

from mcap.reader import make_reader


def main(path, topic):
    with open(path, "rb") as f:
        reader = make_reader(f)
        schema = None
        messages = []
        for s, _channel, message in reader.iter_messages(topics=[topic]):
            schema = {"name": s.name, "encoding": s.encoding, "is_json": isinstance(json.loads(s.data), dict)}
            messages.append({"log_time": message.log_time, "message": json.loads(message.data)})
    print(json.dumps({"schema": schema, "messages": messages}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
