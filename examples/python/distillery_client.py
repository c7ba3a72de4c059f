#!/usr/bin/env python3
"""Submit a Distillery compression job from Python and follow it to its result.

Distillery's topics carry Avro in one of two formats, as the services are configured:
- single-object encoding (the default): two bytes C3 01, the 8-byte CRC-64-AVRO fingerprint of the
  writer's schema (little-endian), then the binary record;
- Confluent's wire format, with a schema registry (DISTILLERY_SCHEMA_REGISTRY_URL): a zero byte,
  the writer schema's 4-byte registry id (big-endian), then the binary record.
This client needs only Debian's python3-confluent-kafka and python3-avro, and the released .avsc
files of the schemas module (schemas/src/main/resources/dev/distillery/schemas/released/<Record>/
v<N>.avsc): it encodes with the newest CompressionRequest and decodes any released version by its
fingerprint, or, given --schema-registry, registers the request's schema under
distillery.requests-value, writes Confluent's format, and reads both formats (a writer's schema is
fetched from the registry by its id). confluent-kafka's own AvroSerializer needs fastavro, which
Debian 12 does not package; its SchemaRegistryClient does not.

    python3 distillery_client.py --bootstrap-servers HOST:PORT --schemas DIR request.json
    python3 distillery_client.py --bootstrap-servers HOST:PORT --schemas DIR \
        --schema-registry http://registry:8080/apis/ccompat/v7 request.json

prints each progress event (stage, fraction done, time left) and the result, and exits 0 when the
job is DONE, 1 when it FAILED (the field at fault and the reason are printed), 2 on bad usage.
"""
import argparse
import io
import json
import os
import sys
import time
import uuid

import avro.io
import avro.schema
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0
EMPTY = 0xC15D213AA4D7A795  # the CRC-64-AVRO of nothing, as the Avro specification defines it


def _fingerprint_table():
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp)
    return table


TABLE = _fingerprint_table()


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def canonical(schema, namespace=None, seen=None):
    """The Avro specification's Parsing Canonical Form of a schema given as JSON (python3-avro
    1.11's own canonical_form keeps properties of primitive types, so its fingerprints differ
    from Java's)."""
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return json.dumps(schema)
        return json.dumps(schema if "." in schema or not namespace else namespace + "." + schema)
    if isinstance(schema, list):
        return "[" + ",".join(canonical(branch, namespace, seen) for branch in schema) + "]"
    kind = schema["type"]
    if kind in ("record", "error", "enum", "fixed"):
        name = schema["name"]
        if "." in name:
            full, namespace = name, name.rsplit(".", 1)[0]
        else:
            namespace = schema.get("namespace", namespace)
            full = namespace + "." + name if namespace else name
        if full in seen:
            return json.dumps(full)
        seen.add(full)
        parts = ['"name":' + json.dumps(full), '"type":' + json.dumps("record" if kind == "error" else kind)]
        if kind in ("record", "error"):
            parts.append('"fields":[' + ",".join('{"name":%s,"type":%s}' % (json.dumps(f["name"]),
                                                                           canonical(f["type"], namespace, seen))
                                                 for f in schema["fields"]) + "]")
        elif kind == "enum":
            parts.append('"symbols":' + json.dumps(schema["symbols"], separators=(",", ":")))
        else:
            parts.append('"size":%d' % schema["size"])
        return "{" + ",".join(parts) + "}"
    if kind == "array":
        return '{"type":"array","items":%s}' % canonical(schema["items"], namespace, seen)
    if kind == "map":
        return '{"type":"map","values":%s}' % canonical(schema["values"], namespace, seen)
    return canonical(kind, namespace, seen)


def fingerprint(schema_json):
    """CRC-64-AVRO of the schema's parsing canonical form (what Java's SchemaNormalization computes)."""
    fp = EMPTY
    for byte in canonical(schema_json).encode("utf-8"):
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp


class Schemas:
    """Every released version of every record, by fingerprint; the newest of each, by name; with a
    registry, the writer schemas of Confluent-format records by their registry id."""

    def __init__(self, released_dir, registry=None):
        self.registry = registry
        self.by_id = {}
        self.by_fingerprint = {}
        self.newest = {}
        self.texts = {}
        for record in sorted(os.listdir(released_dir)):
            versions = sorted(os.listdir(os.path.join(released_dir, record)),
                              key=lambda name: int(name[1:].split(".")[0]))
            for version in versions:
                with open(os.path.join(released_dir, record, version)) as f:
                    text = f.read()
                # A released file holds its whole schema, nested records included: parsed alone.
                schema = avro.schema.parse(text)
                schema.fingerprint = fingerprint(json.loads(text))
                self.by_fingerprint[schema.fingerprint] = schema
                self.newest[record] = schema
                self.texts[record] = text

    def encode(self, topic, record, datum):
        schema = self.newest[record]
        out = io.BytesIO()
        if self.registry is None:
            out.write(MAGIC + schema.fingerprint.to_bytes(8, "little"))
        else:
            schema_id = self.registry.register_schema(topic + "-value", Schema(self.texts[record], "AVRO"))
            out.write(bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big"))
        avro.io.DatumWriter(schema).write(with_defaults(schema, datum), avro.io.BinaryEncoder(out))
        return out.getvalue()

    def decode(self, data):
        if data[:1] == bytes([CONFLUENT_MAGIC]) and len(data) >= 5:
            if self.registry is None:
                raise ValueError("a record in Confluent's wire format: pass --schema-registry")
            writer, body = self.writer_by_id(int.from_bytes(data[1:5], "big")), data[5:]
        elif data[:2] == MAGIC:
            writer, body = self.by_fingerprint.get(int.from_bytes(data[2:10], "little")), data[10:]
            if writer is None:
                raise ValueError("written with a schema that is not among the released ones")
        else:
            raise ValueError("neither Avro single-object encoding nor Confluent's wire format")
        reader = self.newest[writer.name]
        return avro.io.DatumReader(writer, reader).read(avro.io.BinaryDecoder(io.BytesIO(body)))

    def writer_by_id(self, schema_id):
        if schema_id not in self.by_id:
            self.by_id[schema_id] = avro.schema.parse(self.registry.get_schema(schema_id).schema_str)
        return self.by_id[schema_id]


def with_defaults(schema, datum):
    """The datum with every field it leaves out set to the schema's default (python3-avro does not)."""
    if isinstance(schema, avro.schema.RecordSchema) and isinstance(datum, dict):
        filled = {}
        for field in schema.fields:
            if field.name in datum:
                filled[field.name] = with_defaults(field.type, datum[field.name])
            elif field.has_default:
                filled[field.name] = with_defaults(field.type, field.default)
            else:
                raise ValueError("the request needs '%s'" % field.name)
        return filled
    if isinstance(schema, avro.schema.UnionSchema) and datum is not None:
        for branch in schema.schemas:
            if isinstance(branch, avro.schema.RecordSchema) and isinstance(datum, dict):
                return with_defaults(branch, datum)
    if isinstance(schema, avro.schema.ArraySchema) and isinstance(datum, list):
        return [with_defaults(schema.items, item) for item in datum]
    return datum


def follow(consumer, schemas, job_id, timeout_s):
    """Prints the job's progress; returns its result or failure as (topic, record)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error() or message.key() is None or message.key().decode() != job_id:
            continue
        record = schemas.decode(message.value())
        if message.topic() == "distillery.progress":
            left = record.get("secondsLeft")
            print("%-17s %5.1f%% %s%s" % (record["stage"], 100 * record.get("fraction", 0.0),
                                          record["message"], "" if left is None else " (%.0f s left)" % left))
        elif message.topic() == "distillery.failures" and record.get("refusedRequest"):
            continue  # a refusal of another request that reused this id
        else:
            return message.topic(), record
    raise TimeoutError("no result or failure for %s within %d s" % (job_id, timeout_s))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("request", help="the request as JSON (Avro's JSON without union wrappers)")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"))
    parser.add_argument("--schemas", required=True, help="the released schemas directory")
    parser.add_argument("--schema-registry", default=os.environ.get("DISTILLERY_SCHEMA_REGISTRY_URL"),
                        help="a Confluent-compatible schema registry's URL: write Confluent's wire format")
    parser.add_argument("--schema-registry-user-info", default=os.environ.get("DISTILLERY_SCHEMA_REGISTRY_USER_INFO"),
                        help="user:password for the registry")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds to wait for the result")
    args = parser.parse_args(argv)
    registry = None
    if args.schema_registry:
        config = {"url": args.schema_registry}
        if args.schema_registry_user_info:
            config["basic.auth.user.info"] = args.schema_registry_user_info
        registry = SchemaRegistryClient(config)
    schemas = Schemas(args.schemas, registry)
    with open(args.request) as f:
        request = json.load(f)
    request.setdefault("jobId", "py-" + uuid.uuid4().hex[:12])
    request.setdefault("submittedAtMs", int(time.time() * 1000))
    job_id = request["jobId"]

    consumer = Consumer({"bootstrap.servers": args.bootstrap_servers, "group.id": "py-" + uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["distillery.progress", "distillery.results", "distillery.failures"])
    producer = Producer({"bootstrap.servers": args.bootstrap_servers, "acks": "all"})
    producer.produce("distillery.requests", key=job_id, value=schemas.encode("distillery.requests", "CompressionRequest", request))
    if producer.flush(30) != 0:
        print("error: the request was not acknowledged within 30 s", file=sys.stderr)
        return 2
    print("submitted", job_id)
    try:
        topic, record = follow(consumer, schemas, job_id, args.timeout)
    finally:
        consumer.close()
    if topic == "distillery.failures":
        print("FAILED in %s%s: %s" % (record["stage"], " (field %s)" % record["field"] if record.get("field") else "",
                                       record["reason"]))
        return 1
    final = record.get("pruned") or record.get("student") or record.get("teacher")
    print("DONE: %s" % json.dumps({"jobId": record["jobId"], "accuracy": final and final["testAccuracy"],
                                   "artifacts": [{"kind": a["kind"], "bytes": a["file"]["sizeBytes"],
                                                  "accuracy": a.get("testAccuracy")}
                                                 for a in record.get("artifacts", [])]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
