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


def order_files(package: str) -> list[Any]:
    """Three user files, imports first: ``money.proto`` (a message using google.type.Decimal),
    ``common.proto`` (an enum and a message with a nested message, importing money) and
    ``order.proto`` (importing both and google.protobuf.Timestamp): a diamond of references."""
    from google.protobuf import descriptor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    money = descriptor_pb2.FileDescriptorProto(
        name=f"{package}/money.proto", package=f"{package}.money", syntax="proto3",
        dependency=["google/type/decimal.proto"])
    m = money.message_type.add(name="Money")
    m.field.add(name="currency", number=1, type=F.TYPE_STRING, label=opt)
    m.field.add(name="amount", number=2, type=F.TYPE_MESSAGE, label=opt,
                type_name=".google.type.Decimal")

    common = descriptor_pb2.FileDescriptorProto(
        name=f"{package}/common.proto", package=f"{package}.common", syntax="proto3",
        dependency=[f"{package}/money.proto"])
    tier = common.enum_type.add(name="Tier")
    tier.value.add(name="BASIC", number=0)
    tier.value.add(name="GOLD", number=1)
    c = common.message_type.add(name="Customer")
    address = c.nested_type.add(name="Address")
    address.field.add(name="city", number=1, type=F.TYPE_STRING, label=opt)
    c.field.add(name="name", number=1, type=F.TYPE_STRING, label=opt)
    c.field.add(name="tier", number=2, type=F.TYPE_ENUM, label=opt,
                type_name=f".{package}.common.Tier")
    c.field.add(name="address", number=3, type=F.TYPE_MESSAGE, label=opt,
                type_name=f".{package}.common.Customer.Address")
    c.field.add(name="credit", number=4, type=F.TYPE_MESSAGE, label=opt,
                type_name=f".{package}.money.Money")

    order = descriptor_pb2.FileDescriptorProto(
        name=f"{package}/order.proto", package=package, syntax="proto3",
        dependency=[f"{package}/common.proto", f"{package}/money.proto",
                    "google/protobuf/timestamp.proto"])
    o = order.message_type.add(name="Order")
    o.field.add(name="id", number=1, type=F.TYPE_STRING, label=opt)
    o.field.add(name="customer", number=2, type=F.TYPE_MESSAGE, label=opt,
                type_name=f".{package}.common.Customer")
    o.field.add(name="tier", number=3, type=F.TYPE_ENUM, label=opt,
                type_name=f".{package}.common.Tier")
    o.field.add(name="lines", number=4, type=F.TYPE_MESSAGE, label=rep,
                type_name=f".{package}.money.Money")
    o.field.add(name="at", number=5, type=F.TYPE_MESSAGE, label=opt,
                type_name=".google.protobuf.Timestamp")
    o.field.add(name="history", number=6, type=F.TYPE_ENUM, label=rep,
                type_name=f".{package}.common.Tier")
    return [money, common, order]


def order_class(package: str) -> Any:
    """The ``Order`` message class of :func:`order_files`, built in a pool of its own."""
    from google.protobuf import descriptor_pool, message_factory, timestamp_pb2
    from google.type import decimal_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(decimal_pb2.DESCRIPTOR.serialized_pb)
    for proto in order_files(package):
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Order"))


def order(cls: Any) -> Any:
    from datetime import UTC, datetime

    o = cls(id="o1", tier=1, history=[0, 1])
    o.customer.name = "Ann"
    o.customer.tier = 1
    o.customer.address.city = "Oslo"
    o.customer.credit.currency = "EUR"
    o.customer.credit.amount.value = "12.50"
    first, second = o.lines.add(), o.lines.add()
    first.currency, second.currency = "EUR", "NOK"
    first.amount.value, second.amount.value = "1.10", "99999999999999999999.99"
    o.at.FromDatetime(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    return o


ORDER_JSON = (
    '{"id":"o1","customer":{"name":"Ann","tier":"GOLD","address":{"city":"Oslo"},'
    '"credit":{"currency":"EUR","amount":12.50}},"tier":"GOLD",'
    '"lines":[{"currency":"EUR","amount":1.10},{"currency":"NOK","amount":99999999999999999999.99}],'
    '"at":"2026-03-01T12:00:00Z","history":["BASIC","GOLD"]}'
)
