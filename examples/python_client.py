#!/usr/bin/env python3
"""Call a pitcrew service through the router, with nothing but pyzmq and msgpack.

    python3 examples/python_client.py SERVICE METHOD [JSON-ARG ...]
    python3 examples/python_client.py router list_peers

Over TCP to a robot that holds a team key, the connection must be CURVE-authenticated: on a
machine with the team key run `pitcrew --key-file team.key key show --curve team.key >
client.curve` once (it prints the robot's server key and this key holder's client key pair),
keep client.curve as secret as the key, and pass it:

    python3 examples/python_client.py --endpoint tcp://ROBOT:6000 --curve-keys client.curve \
        router ping
"""
import argparse, json, os, sys
import msgpack, zmq

parser = argparse.ArgumentParser(description="Call a pitcrew RPC method through the router.")
parser.add_argument("service", help="service identity, e.g. device-service, or router")
parser.add_argument("method")
parser.add_argument("params", nargs="*", help="parameters as JSON")
parser.add_argument("--endpoint", default=f"ipc:///tmp/{os.environ.get('PITCREW_NAMESPACE', 'rt')}-rpc.sock")
parser.add_argument("--timeout", type=float, default=5.0, help="seconds")
parser.add_argument("--curve-keys", help="file printed by `pitcrew key show --curve` (TCP to a robot with a key)")
args = parser.parse_args()

sock = zmq.Context.instance().socket(zmq.DEALER)
if args.curve_keys:
    with open(args.curve_keys) as f:
        keys = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
    sock.curve_serverkey = keys["server_public"].encode()  # the robot's (derived from the team key)
    sock.curve_publickey = keys["client_public"].encode()  # ours, which the robot admits
    sock.curve_secretkey = keys["client_secret"].encode()
sock.setsockopt(zmq.IDENTITY, f"py-{os.getpid()}".encode())  # unique per process
sock.setsockopt(zmq.LINGER, 0)
sock.connect(args.endpoint)
request = [0, 1, args.method, [json.loads(p) for p in args.params]]  # [type, msgid, method, params]
sock.send_multipart([args.service.encode(), msgpack.packb(request)])  # no empty delimiter frame
if not sock.poll(int(args.timeout * 1000)):
    sys.exit(f"timeout: no answer from {args.service}.{args.method}")
source, payload = sock.recv_multipart()  # [service identity, response]
kind, msgid, error, result = msgpack.unpackb(payload, raw=False)
if error is not None:
    sys.exit(f"{error['code']}: {error['message']}")
print(json.dumps(result))
