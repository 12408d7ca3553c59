"""Opens a pitcrew recording with the `mcap` package (a third-party reader) and prints
what it holds as one JSON object: channels with their schema name and encodings, message
counts by topic (counted by reading every message), metadata names and attachment names.

    python3 tests/python/read_recording.py FILE.mcap
"""

import json
import sys

from mcap.reader import make_reader


def main(path):
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        channels = {
            c.topic: {
                "schema": summary.schemas[c.schema_id].name,
                "schema_encoding": summary.schemas[c.schema_id].encoding,
                "message_encoding": c.message_encoding,
                "schema_is_json": isinstance(json.loads(summary.schemas[c.schema_id].data), dict),
            }
            for c in summary.channels.values()
        }
        counts = {}
        for _schema, channel, message in reader.iter_messages():
            json.loads(message.data)
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
        out = {
            "channels": channels,
            "counts": counts,
            "chunks": len(summary.chunk_indexes),
            "metadata": [m.name for m in reader.iter_metadata()],
            "attachments": [a.name for a in reader.iter_attachments()],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
