"""Carts, kept in the ledger's database so that every shop process sees the same one.

A cart is found by the hash of the random token in the shopper's cookie (the token itself is
never stored, so the database does not hold anyone's cookie). Each change is one transaction
that locks the cart first (PostgreSQL; SQLite writes take turns anyway), so the bounds that
``bookpay.cart`` checks hold when two requests change one cart at once.

A cart's ``generation`` counts the payments it has been settled by: the checkout page keys its
attempt on it, so that after a payment the next checkout is a new attempt, not the paid one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from bookpay.ledger.model import now_iso
from bookpay.ledger.units import rerun_on_contention

CART_COLUMNS = ("id", "generation", "created", "updated")
ITEM_COLUMNS = ("item_id", "title", "currency", "quantity", "position")
_CART = ", ".join(CART_COLUMNS)
_ITEMS = ", ".join(ITEM_COLUMNS)

# edit(items) -> {item_id: (quantity, title, currency)}; quantity 0 removes the line.
CartEdit = Callable[[list[dict]], dict[str, tuple[int, str, str]]]


class CartStore:
    """The cart methods of ``Ledger`` (which provides ``backend`` and ``_read``)."""

    def create_cart(self, token_hash: str) -> dict:
        stamp = now_iso()
        cart_id = "cart_" + secrets.token_hex(8)
        self.backend.write_one(
            "INSERT INTO carts (id, token_hash, created, updated) VALUES (?, ?, ?, ?)",
            (cart_id, token_hash, stamp, stamp),
        )
        return {"id": cart_id, "generation": 0, "created": stamp, "updated": stamp}

    def find_cart(self, token_hash: str) -> dict | None:
        rows = self._read(f"SELECT {_CART} FROM carts WHERE token_hash = ?", (token_hash,))
        return rows[0] if rows else None

    def rekey_cart(self, cart_id: str, old_hash: str, new_hash: str) -> bool:
        """Give the cart a new token's hash, if it still has ``old_hash``; whether it did (of
        two requests moving one cart, one does)."""
        changed = self.backend.write_one(
            "UPDATE carts SET token_hash = ?, updated = ? WHERE id = ? AND token_hash = ?",
            (new_hash, now_iso(), cart_id, old_hash),
        )
        return changed == 1

    def get_cart(self, cart_id: str) -> dict | None:
        rows = self._read(f"SELECT {_CART} FROM carts WHERE id = ?", (cart_id,))
        return rows[0] if rows else None

    def cart_items(self, cart_id: str) -> list[dict]:
        """The cart's lines in the order they were added."""
        return self._read(
            f"SELECT {_ITEMS} FROM cart_items WHERE cart_id = ? ORDER BY position", (cart_id,)
        )

    def cart_count(self, cart_id: str) -> int:
        """Copies in the cart (what the header's count shows)."""
        total = self._scalar(
            "SELECT COALESCE(SUM(quantity), 0) FROM cart_items WHERE cart_id = ?", (cart_id,)
        )
        return int(total or 0)

    @rerun_on_contention
    def edit_cart(self, cart_id: str, edit: CartEdit) -> list[dict]:
        """Apply ``edit`` to the cart's current lines, in one transaction with the cart locked.

        ``edit`` sees the lines as they are inside the transaction and raises to refuse the
        change (nothing is written then). Returns the cart's lines afterwards.
        """
        with self.backend.write() as tx:
            tx.one("SELECT id FROM carts WHERE id = ?{for_update}", (cart_id,))
            items = tx.all(
                f"SELECT {_ITEMS} FROM cart_items WHERE cart_id = ? ORDER BY position", (cart_id,)
            )
            changes = edit(items)
            known = {item["item_id"] for item in items}
            position = max((item["position"] for item in items), default=-1)
            for item_id, (quantity, title, currency) in changes.items():
                if quantity <= 0:
                    tx.run(
                        "DELETE FROM cart_items WHERE cart_id = ? AND item_id = ?",
                        (cart_id, item_id),
                    )
                elif item_id in known:
                    tx.run(
                        "UPDATE cart_items SET quantity = ?, title = ?, currency = ? "
                        "WHERE cart_id = ? AND item_id = ?",
                        (quantity, title, currency, cart_id, item_id),
                    )
                else:
                    position += 1
                    tx.run(
                        f"INSERT INTO cart_items (cart_id, {_ITEMS}) VALUES (?, ?, ?, ?, ?, ?)",
                        (cart_id, item_id, title, currency, quantity, position),
                    )
            tx.run("UPDATE carts SET updated = ? WHERE id = ?", (now_iso(), cart_id))
            return tx.all(
                f"SELECT {_ITEMS} FROM cart_items WHERE cart_id = ? ORDER BY position", (cart_id,)
            )

    @rerun_on_contention
    def settle_cart(self, payment_intent: str) -> bool:
        """Take what a paid quote bought out of its cart, once; whether this call did it.

        Only the copies paid for are removed: books added in another tab while paying stay.
        The cart's generation moves on, so its next checkout is a new attempt. The canceling
        of the cart's other attempts' PaymentIntents is owed in the same transaction
        (``sibling_cancels``, done by ``bookpay.siblings``), so a stop never loses it.
        """
        with self.backend.write() as tx:
            quote = tx.one(
                "SELECT order_id, cart_id FROM quotes WHERE payment_intent = ? "
                "AND settled_at IS NULL{for_update}",
                (payment_intent,),
            )
            if quote is None:
                return False
            stamp = now_iso()
            tx.run(
                "UPDATE quotes SET settled_at = ? WHERE payment_intent = ?", (stamp, payment_intent)
            )
            cart_id = quote["cart_id"]
            if cart_id is not None:  # its other attempts' payments are to be canceled, durably
                self.owe_sibling_cancel(tx, payment_intent, cart_id)
            # The cart locked first, as edit_cart locks it, before any of its lines: taken the
            # other way round, a settle and an edit of one cart deadlocked (PostgreSQL).
            cart = tx.one("SELECT id FROM carts WHERE id = ?{for_update}", (cart_id,))
            if cart_id is None or cart is None:
                return True
            paid = tx.all(
                "SELECT item_id, quantity FROM order_lines WHERE order_id = ?", (quote["order_id"],)
            )
            for line in paid:
                # Lines paid in full go; the others keep what is left (quantity stays above 0).
                args = (cart_id, line["item_id"], line["quantity"])
                tx.run(
                    "DELETE FROM cart_items WHERE cart_id = ? AND item_id = ? AND quantity <= ?",
                    args,
                )
                tx.run(
                    "UPDATE cart_items SET quantity = quantity - ? "
                    "WHERE cart_id = ? AND item_id = ?",
                    (line["quantity"], cart_id, line["item_id"]),
                )
            tx.run(
                "UPDATE carts SET generation = generation + 1, updated = ? WHERE id = ?",
                (stamp, cart_id),
            )
            return True
