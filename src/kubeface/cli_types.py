"""Argument types shared by the command modules, so a wrong value fails before any work starts."""

from __future__ import annotations

import argparse


def fraction(text: str) -> float:
    """Parse a number in [0, 1] for argparse, so a wrong value fails before any work starts."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1]; got {text}")
    return value


def positive_int(text: str) -> int:
    """Parse an integer of at least 1 for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {value}")
    return value


def port_number(text: str) -> int:
    """Parse a TCP port for argparse: 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from 1 to 65535")
    return port


def positive_seconds(text: str) -> float:
    """Parse a timeout for argparse: a finite number of seconds above 0."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: expected seconds above 0, for example 120")
    return seconds
