"""GetInfo on a kubelet plugin-registration socket with grpc-python; prints the answer as JSON.

A foreign client for the registrar's socket: grpc-python chooses its own :authority for a
unix: target unless --authority overrides it (grpc.default_authority). Exit status 1 with the
gRPC error on stderr when the call fails.

usage: grpc_python_getinfo.py --socket PATH [--authority VALUE]
"""

import argparse
import json
import sys

import grpc


def varint(buf, i):
    value, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def plugin_info(buf):
    """Decodes pluginregistration.v1.PluginInfo: type=1, name=2, endpoint=3, supported_versions=4."""
    out = {"type": "", "name": "", "endpoint": "", "versions": []}
    names = {1: "type", 2: "name", 3: "endpoint"}
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire != 2:
            raise ValueError(f"unexpected wire type {wire} for field {field}")
        length, i = varint(buf, i)
        value = buf[i : i + length].decode()
        i += length
        if field == 4:
            out["versions"].append(value)
        elif field in names:
            out[names[field]] = value
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--authority")
    args = parser.parse_args()
    options = []
    if args.authority is not None:
        options.append(("grpc.default_authority", args.authority))
    with grpc.insecure_channel("unix:" + args.socket, options=options) as channel:
        get_info = channel.unary_unary(
            "/pluginregistration.Registration/GetInfo",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            answer = get_info(b"", timeout=10)
        except grpc.RpcError as e:
            print(f"GetInfo failed: {e.code()}: {e.details()}", file=sys.stderr)
            return 1
    print(json.dumps(plugin_info(answer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
