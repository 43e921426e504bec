"""ordercli: order administration for a shop's customers, orders and order items."""

__version__ = "0.1.0"
