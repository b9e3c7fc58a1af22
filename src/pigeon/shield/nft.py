"""Mirroring bans into nftables, so the kernel drops banned peers before Pigeon sees them.

``pigeon serve --nft-set NAME`` creates (idempotently) a table with two sets, ``NAME`` for
IPv4 and ``NAME6`` for IPv6, and an input chain that drops their members; every ban the
:class:`~pigeon.shield.bans.BanList` makes is then added with its timeout. Needs root or
CAP_NET_ADMIN; :meth:`NftMirror.available` says whether this process can use ``nft``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import shutil
import subprocess

__all__ = ["NftMirror"]

log = logging.getLogger("pigeon.shield.nft")


class NftMirror:
    """Mirrors bans into nftables sets so the kernel drops banned peers.

    IPv4 targets go to ``set_name``, IPv6 ones to ``set_name + "6"``; both sets are
    ``interval`` (they hold prefixes) and ``timeout`` (the kernel expires bans by itself, so
    nothing is left behind if Pigeon dies) and ``auto-merge`` (so a prefix can be added over
    addresses already in the set; merging may stretch a neighbour's kernel ban to the later
    timeout, at most ``duration``). Every call runs ``nft`` as a subprocess without blocking
    the event loop, logs failures and never raises: a broken firewall must not take the
    messenger down with it.
    """

    def __init__(
        self,
        set_name: str,
        table: str = "pigeon",
        family: str = "inet",
        chain: str = "input",
        nft: str = "nft",
        timeout: float = 10.0,
        max_concurrency: int = 1,
    ) -> None:
        if family not in ("inet", "ip", "ip6"):
            raise ValueError("family must be inet, ip or ip6")
        self.set_name = set_name
        self.table = table
        self.family = family
        self.chain = chain
        self.nft = nft
        self.timeout = timeout
        # One nft process at a time by default: auto-merge is a read-modify-write done by
        # the nft tool, and two concurrent adds to one set fail with "File exists". The
        # semaphore is FIFO, so an address is in the set before the prefix that covers it.
        self._gate = asyncio.Semaphore(max_concurrency)
        self.added = 0
        self.failed = 0

    @staticmethod
    def available(nft: str = "nft") -> bool:
        """True if ``nft`` is installed and this user may list the ruleset (synchronous)."""
        path = shutil.which(nft)
        if path is None:
            return False
        try:
            done = subprocess.run(
                [path, "list", "tables"], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0

    def element(self, target: str) -> tuple[str, str] | None:
        """``(set name, element)`` for a target, or None if it is not an address or prefix
        this mirror can hold. An IPv4-mapped IPv6 address (an IPv4 peer on a dual-stack
        socket) goes in the IPv4 set: its packets reach the kernel as IPv4."""
        try:
            network = ipaddress.ip_network(target, strict=False)
        except ValueError:
            return None
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.ip_network(mapped)
        v4 = network.version == 4
        if (v4 and self.family == "ip6") or (not v4 and self.family == "ip"):
            return None
        full = network.prefixlen == network.max_prefixlen
        text = str(network.network_address) if full else str(network)
        return (self.set_name if v4 else self.set_name + "6"), text

    async def ensure(self) -> bool:
        """Create the table, the sets and a drop rule (idempotent: reruns keep the bans)."""
        lines = [f"add table {self.family} {self.table}"]
        rules = []
        for version, suffix, match in ((4, "", "ip"), (6, "6", "ip6")):
            if (version == 4 and self.family == "ip6") or (version == 6 and self.family == "ip"):
                continue
            name = self.set_name + suffix
            lines.append(
                f"add set {self.family} {self.table} {name} "
                f"{{ type ipv{version}_addr; flags interval,timeout; auto-merge; }}"
            )
            rules.append(
                f"add rule {self.family} {self.table} {self.chain} {match} saddr @{name} drop"
            )
        # Priority -10 runs before the usual filter chains (0), so an accept there cannot
        # let a banned peer through; flushing our own chain keeps a restart from doubling
        # the rules.
        lines.append(
            f"add chain {self.family} {self.table} {self.chain} "
            f"{{ type filter hook input priority -10; policy accept; }}"
        )
        lines.append(f"flush chain {self.family} {self.table} {self.chain}")
        lines.extend(rules)
        return await self._run(["-f", "-"], stdin="\n".join(lines) + "\n")

    async def add(self, target: str, seconds: float) -> bool:
        found = self.element(target)
        if found is None:
            log.warning("nft mirror: %r is not an address this mirror can hold", target)
            return False
        name, text = found
        element = f"{{ {text} timeout {max(1, math.ceil(seconds))}s }}"
        ok = await self._run(["add", "element", self.family, self.table, name, element])
        self.added += int(ok)
        return ok

    async def remove(self, target: str) -> bool:
        found = self.element(target)
        if found is None:
            return False
        name, text = found
        return await self._run(["delete", "element", self.family, self.table, name,
                                f"{{ {text} }}"])

    async def _run(self, args: list[str], stdin: str | None = None) -> bool:
        async with self._gate:
            try:
                proc = await asyncio.create_subprocess_exec(
                    self.nft, *args,
                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )
            except OSError as exc:
                self.failed += 1
                log.error("nft mirror: cannot run %s: %s", self.nft, exc)
                return False
            try:
                _, err = await asyncio.wait_for(
                    proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
                )
            except TimeoutError:
                proc.kill()
                await proc.wait()
                self.failed += 1
                log.error("nft mirror: %s %s timed out", self.nft, " ".join(args))
                return False
            if proc.returncode != 0:
                self.failed += 1
                log.error("nft mirror: %s %s failed: %s", self.nft, " ".join(args),
                          err.decode(errors="replace").strip())
                return False
            return True
