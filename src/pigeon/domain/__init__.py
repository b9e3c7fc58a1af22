"""Pigeon's rules, as pure functions: who may do what in a chat, who sees what, who is told.

Rules live here; backends store and fetch. A store backend's transaction reads the rows a
rule needs, calls the rule with them, and writes what the rule decided, so that a check and
its write stay atomic while SQLite and PostgreSQL (and whatever follows) share every rule.
Backends only read, write and allocate sequence numbers.

Nothing here does I/O: no sockets, no database, no asyncio, no clock (a time is always an
argument). Refusals are raised as the protocol's typed errors (:mod:`pigeon.protocol.errors`),
exactly as the caller across the wire will see them. This package imports only
:mod:`pigeon.protocol`; the store and the server import it.

Modules, one concern each:

- :mod:`.records`: the rows the rules take (a member's standing, a chat, a departure);
- :mod:`.membership`: members and roles: who may add, remove, promote; owner succession;
- :mod:`.groups`: consent to join a group (privacy), group quotas and capacity;
- :mod:`.people`: who may see whom;
- :mod:`.messages`: replies, edits, deletion for everyone, read marks (read-on-send);
- :mod:`.visibility`: what a message update shows someone who left the chat;
- :mod:`.audience`: who receives which update;
- :mod:`.views`: what a chat looks like to each member (chat and dialog shaping);
- :mod:`.paging`: pages of history, dialogs and the update log, by count and by bytes.
"""
