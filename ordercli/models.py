"""Peewee models for querying the tables; the tables themselves are made by migrations.py.

No Python-side defaults: a column left out of an INSERT gets the database's DEFAULT,
the same one the shop's application relies on.
"""

from __future__ import annotations

import peewee

from ordercli.db import database
from ordercli.domain import CANCELLABLE, SPENT, Status

__all__ = [
    "CANCELLABLE",
    "SPENT",
    "Customer",
    "Order",
    "OrderEvent",
    "OrderItem",
    "Status",
]


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Customer(BaseModel):
    id = peewee.BigAutoField()
    name = peewee.CharField(max_length=120)
    email = peewee.CharField(max_length=254, unique=True)
    is_active = peewee.BooleanField()
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "customer"


class Order(BaseModel):
    id = peewee.BigAutoField()
    customer = peewee.ForeignKeyField(Customer, column_name="customer_id", on_delete="RESTRICT")
    status = peewee.CharField(max_length=20)
    total_cents = peewee.IntegerField()
    is_archived = peewee.BooleanField()
    created_at = peewee.DateTimeField()
    updated_at = peewee.DateTimeField()

    class Meta:
        table_name = "orders"


class OrderItem(BaseModel):
    id = peewee.BigAutoField()
    order = peewee.ForeignKeyField(Order, column_name="order_id", on_delete="CASCADE")
    sku = peewee.CharField(max_length=64)
    quantity = peewee.IntegerField()
    unit_price_cents = peewee.IntegerField()

    class Meta:
        table_name = "order_item"


class OrderEvent(BaseModel):
    id = peewee.BigAutoField()
    order = peewee.ForeignKeyField(Order, column_name="order_id")
    from_status = peewee.CharField(max_length=20)
    to_status = peewee.CharField(max_length=20)
    reason = peewee.TextField(null=True)
    actor = peewee.TextField(null=True)
    created_at = peewee.DateTimeField()

    class Meta:
        table_name = "order_event"
