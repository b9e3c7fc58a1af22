"""Who comes from where: source addresses across 127.0.0.0/8, one plan per kind of client.

Linux routes the whole of 127.0.0.0/8 to the loopback interface, so a socket can bind any
address in it without configuration: that is how one machine plays thousands of distinct
peers, each with its own per-address and per-prefix limits on the server.

    127.1.0.0 – 127.32.x.x     legitimate users and their idle devices, over 8192 /24s
    127.64.0.0 – 127.64.x.x    legitimate sign-ups during the run
    127.65.0.0 – 127.65.x.x    setup (registering the accounts before the run)
    127.66.0.0 – 127.69.x.x    newcomers (--newcomers), one per /24 as people on many networks
    127.70.0.0 – 127.70.x.x    compromised (spamming) accounts
    127.128.0.0 – 127.255.x.x  attackers, spread over --attack-subnets /24 prefixes
"""

from __future__ import annotations

import resource

_HOSTS = 254  # .1 to .254 in each /24


def _spread(first_octet: int, index: int) -> str:
    """The index-th address from 127.<first_octet>.0.1, 254 to a /24, skipping .0 and .255."""
    prefix, host = divmod(index, _HOSTS)
    return f"127.{first_octet + prefix // 256}.{prefix % 256}.{host + 1}"


LEGIT_PREFIXES = 8192


def legit_address(index: int) -> str:
    """Legitimate devices come from many networks, a few per /24 (10,000 devices: 1-2 per
    prefix), as the users of a real server do; attackers are denser (--attack-subnets)."""
    prefix, host = index % LEGIT_PREFIXES, index // LEGIT_PREFIXES
    if host >= _HOSTS:
        raise ValueError(f"legitimate device {index} does not fit in 127.1.0.0-127.32.x.x")
    return f"127.{1 + prefix // 256}.{prefix % 256}.{host + 1}"


def signup_address(index: int) -> str:
    return _spread(64, index % (256 * _HOSTS))


def newcomer_address(index: int) -> str:
    prefix, host = index % 1024, (index // 1024) % _HOSTS
    return f"127.{66 + prefix // 256}.{prefix % 256}.{host + 1}"


def setup_address(index: int) -> str:
    return _spread(65, index % (256 * _HOSTS))


def spammer_address(index: int) -> str:
    return _spread(70, index % (256 * _HOSTS))


def attacker_address(index: int, subnets: int) -> str:
    """Attacker ``index`` (0-based): round-robin over ``subnets`` /24 prefixes, as a botnet's
    hosts are spread over many networks, so per-prefix limits see few of them each."""
    subnet, host = index % subnets, index // subnets
    if host >= _HOSTS:
        raise ValueError(f"attacker {index} does not fit in {subnets} prefixes")
    return f"127.{128 + subnet // 256}.{subnet % 256}.{host + 1}"


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (never above the hard limit);
    returns the soft limit now in force. Child processes (the server, the attackers)
    inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft
