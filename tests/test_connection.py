"""The connection handle (db.Connection): each `connect` is its own, nested ones included.

The Peewee models follow the innermost open connection and return to the enclosing one
when a block ends; the core functions run on the handle they are given."""

from __future__ import annotations

import pytest
from helpers import add_customer, add_order

from ordercli.db import Connection, connect, database
from ordercli.errors import NotFound
from ordercli.models import Customer
from ordercli.orders import cancel_orders
from ordercli.queries import list_customers, list_orders, show_order


def _emails(conn: Connection) -> list[str]:
    return [row.email for row in list_customers(conn)]


@pytest.mark.parametrize("server_outside", [False, True], ids=["sqlite-outside", "inside"])
def test_nested_connects_each_talk_to_their_own_database(db_url, tmp_path, server_outside):
    local = f"sqlite:///{tmp_path / 'other.db'}"
    outer_url, inner_url = (db_url, local) if server_outside else (local, db_url)
    before = database.obj
    with connect(outer_url) as outer:
        outer_customer = add_customer("outer@example.com")  # through the models
        with connect(inner_url) as inner:
            inner_customer = add_customer("inner@example.com")
            assert _emails(inner) == ["inner@example.com"]
            assert _emails(outer) == ["outer@example.com"]
            with pytest.raises(NotFound):
                show_order(inner, 1)
        # The inner block is gone: the models and the handle are the outer database's.
        assert database.obj is outer.database
        assert [c.email for c in Customer.select()] == ["outer@example.com"]
        order_id = add_order(outer_customer, status="paid")
        assert [row.email for row in list_orders(outer)] == ["outer@example.com"]
        assert [r.changed for r in cancel_orders(outer, [order_id])] == [True]
        assert show_order(outer, order_id)["status"] == "cancelled"
    assert database.obj is before
    with connect(inner_url) as inner:
        assert _emails(inner) == ["inner@example.com"]
        assert list(list_orders(inner)) == []
        assert [c.id for c in Customer.select()] == [inner_customer]


def test_an_inner_connect_that_fails_gives_the_models_back(sqlite_url, tmp_path):
    with connect(sqlite_url) as outer:
        add_customer("outer@example.com")
        with pytest.raises(NotFound), connect(f"sqlite:///{tmp_path / 'b.db'}") as inner:
            show_order(inner, 7)
        assert database.obj is outer.database
        assert [c.email for c in Customer.select()] == ["outer@example.com"]
