"""The console's local store (SQLAlchemy; SQLite by default, any URL works): the
mirror of the main system, the journal, the audit chain, offline-login material.
Never imports Textual.

Kept import-free on purpose (``localstore.paths`` must not pull in SQLAlchemy).
The public API, by module:

* ``localstore.paths``: ``data_dir(home)``, ``store_path(home)``
* ``localstore.db``: ``open_store(target, *, create=True) -> Store``;
  ``Store.write()`` / ``Store.read()`` (Sessions), ``Store.console_id``, ``Store.close()``
* ``localstore.models``: the tables, ``Money``, ``JournalState``, ``JournalKind``
* ``localstore.audit``: ``append(session, *, user_id, mode, action, payload)``, ``verify(session)``
* ``localstore.credentials``: ``make_verifier``, ``check_verifier``, throttle and clock watermark helpers
* ``localstore.secrets``: ``save_token``, ``load_token``, ``delete_token`` (OS keyring only)
* ``localstore.errors``: ``StoreError``
"""
