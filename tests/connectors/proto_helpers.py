"""Protobuf message classes built at run time (no protoc) with logical-type fields."""

from __future__ import annotations

from typing import Any


def payment_class(package: str) -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
    from google.type import decimal_pb2  # type: ignore[import-untyped]

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"{package}/payment.proto", package=package, syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/type/decimal.proto"])
    status = fdp.enum_type.add(name="Status")
    status.value.add(name="NEW", number=0)
    status.value.add(name="PAID", number=1)
    msg = fdp.message_type.add(name="Payment")
    msg.field.add(name="id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="amount", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".google.type.Decimal")
    msg.field.add(name="at", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".google.protobuf.Timestamp")
    msg.field.add(name="status", number=4, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL,
                  type_name=f".{package}.Status")
    msg.field.add(name="tags", number=5, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    msg.field.add(name="cents", number=6, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(decimal_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Payment"))


def payment(cls: Any) -> Any:
    from datetime import UTC, datetime

    p = cls(id="p1", status=1, tags=["a", "b"], cents=9007199254740993)
    p.amount.value = "1234567890.12"
    p.at.FromDatetime(datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC))
    return p


EXPECTED = (
    '{"id":"p1","amount":%s,"at":"2026-03-01T12:30:15.123000Z","status":"PAID",'
    '"tags":["a","b"],"cents":9007199254740993}'
)
